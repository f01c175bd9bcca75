import { createRequire } from 'node:module';
import type { Socket } from 'node:net';

/**
 * The seam between the native engine and Node's own HTTP parser: the llhttp
 * build `node:http` uses, reached through `_http_common`'s `HTTPParser`.
 * Node's maintainers mean to make that module internal (nodejs/node#58534),
 * so nothing else in Drover touches it: at start-up loadParser() checks that
 * it is present and behaves as this engine expects, and when it does not,
 * HTTP listeners fall back to the http-proxy engine.
 *
 * The parser runs strict (no lenient flags): its strictness is the
 * request-smuggling defence.
 */

/** A parse error from execute(): llhttp's code (`HPE_...`) and where it stopped. */
export interface ParseError extends Error {
  readonly code: string;
  readonly reason: string;
  readonly bytesParsed: number;
}

/** llhttp's own pause signal, returned from a headers callback to stop right after a header block. */
export const PAUSE = 21;

/** One parser instance (a C++ object of Node's). Callbacks are set by index, see `Callbacks`. */
export interface Parser {
  initialize(type: number, resource: object, maxHeaderSize: number, lenient: number): void;
  /** Bytes consumed, or the error; a number below `data.length` means an upgrade stopped it. */
  execute(data: Buffer): number | ParseError;
  /** End of input: completes a message delimited by the connection's close, or errors. */
  finish(): ParseError | undefined;
  resume(): void;
  /** Reads the socket handle's data straight into the parser (no JS Buffer or 'data' event per read). */
  consume(handle: object): void;
  unconsume(): void;
  /** A copy of the read being parsed (inside onExecute). */
  getCurrentBuffer(): Buffer;
  free(): void;
  remove(): void;
  close(): void;
  [callback: number]: unknown;
  /** Drover's back-reference to whoever handles its callbacks. */
  owner: unknown;
}

/** The callback slots of a parser, as Node numbers them. */
export interface Callbacks {
  readonly onMessageBegin: number;
  readonly onHeaders: number;
  readonly onHeadersComplete: number;
  readonly onBody: number;
  readonly onMessageComplete: number;
  readonly onExecute: number;
}

/** What the engine needs from Node's parser module. */
export interface ParserBinding {
  readonly REQUEST: number;
  readonly RESPONSE: number;
  readonly callbacks: Callbacks;
  /** Method names by llhttp's method number. */
  readonly methods: readonly string[];
  create(): Parser;
}

/** The shape of `_http_common` this engine relies on. */
interface HttpCommon {
  HTTPParser?: (new () => Parser) & Record<string, unknown>;
  methods?: unknown;
}

/** Loads `_http_common` the way Node's own `http` does; overridable for tests. */
export type ParserSource = () => unknown;

const nodeSource: ParserSource = () => createRequire(import.meta.url)('_http_common');

/**
 * Loads and checks Node's parser: every method and constant the engine uses
 * must be there, and a request and a response fed through it must come out
 * as expected (header list, method, body as a Buffer, pause on request). An
 * Error saying what is missing means "use the http-proxy engine".
 */
export function loadParser(source: ParserSource = nodeSource): ParserBinding | Error {
  let mod: HttpCommon;
  try {
    mod = source() as HttpCommon;
  } catch (err) {
    return new Error(`node:_http_common cannot be loaded: ${(err as Error).message}`);
  }
  const P = mod?.HTTPParser;
  if (typeof P !== 'function') return new Error('node:_http_common has no HTTPParser');
  const names = ['REQUEST', 'RESPONSE', 'kOnMessageBegin', 'kOnHeaders', 'kOnHeadersComplete', 'kOnBody', 'kOnMessageComplete', 'kOnExecute'];
  const missing = names.filter((n) => typeof P[n] !== 'number');
  for (const m of ['initialize', 'execute', 'finish', 'resume', 'consume', 'unconsume', 'getCurrentBuffer', 'free', 'remove', 'close']) {
    if (typeof (P.prototype as Record<string, unknown>)[m] !== 'function') missing.push(`${m}()`);
  }
  if (!Array.isArray(mod.methods) || !mod.methods.includes('GET')) missing.push('methods');
  if (missing.length) return new Error(`HTTPParser lacks ${missing.join(', ')}`);
  const binding: ParserBinding = {
    REQUEST: P.REQUEST as number,
    RESPONSE: P.RESPONSE as number,
    callbacks: {
      onMessageBegin: P.kOnMessageBegin as number,
      onHeaders: P.kOnHeaders as number,
      onHeadersComplete: P.kOnHeadersComplete as number,
      onBody: P.kOnBody as number,
      onMessageComplete: P.kOnMessageComplete as number,
      onExecute: P.kOnExecute as number,
    },
    methods: methodTable(mod.methods as string[]),
    create: () => new P(),
  };
  try {
    const problem = selfTest(binding);
    return problem ? new Error(`HTTPParser does not behave as expected: ${problem}`) : binding;
  } catch (err) {
    return new Error(`HTTPParser failed its self-test: ${(err as Error).message}`);
  }
}

/**
 * Method names by llhttp's number. llhttp numbers them as its
 * HTTP_ALL_METHOD_MAP does: the HTTP methods 0-33, RTSP's 34-45, then QUERY
 * as 46; `_http_common.methods` lists the HTTP ones in that order with QUERY
 * right after the 34th. A number with no name here is answered 501.
 */
function methodTable(methods: readonly string[]): string[] {
  const table = methods.slice(0, 34);
  if (methods[34] === 'QUERY') table[46] = 'QUERY';
  return table;
}

/** Feeds two pipelined requests and a response through fresh parsers; returns what differs from expectations. */
function selfTest(b: ParserBinding): string | undefined {
  const seen: string[] = [];
  let heads = 0;
  const req = b.create();
  req.initialize(b.REQUEST, {}, 16 * 1024, 0);
  req[b.callbacks.onHeadersComplete] = (major: number, minor: number, headers: string[], method: number, url: string) => {
    seen.push(`${major}.${minor} ${b.methods[method]} ${url} ${headers.join('|')}`);
    return ++heads === 2 ? PAUSE : 0;
  };
  req[b.callbacks.onBody] = (chunk: unknown) => seen.push(Buffer.isBuffer(chunk) ? `body ${chunk.toString('latin1')}` : 'body?');
  req[b.callbacks.onMessageComplete] = () => seen.push('end');
  const input = Buffer.from('POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhiGET /b HTTP/1.1\r\nHost: y\r\n\r\n');
  const r = req.execute(input);
  const expected = ['1.1 POST /a Host|x|Content-Length|2', 'body hi', 'end', '1.1 GET /b Host|y'];
  if (seen.join(';') !== expected.join(';')) return `request callbacks ${JSON.stringify(seen)}`;
  if (typeof r === 'number' || r.code !== 'HPE_PAUSED' || r.bytesParsed !== input.length) return 'pause from onHeadersComplete';
  // The paused message ends when parsing resumes, even on no further bytes.
  req.resume();
  const rest = req.execute(Buffer.alloc(0));
  req.close();
  if (rest !== 0 || seen[seen.length - 1] !== 'end') return 'resume after a pause';
  const res = b.create();
  res.initialize(b.RESPONSE, {}, 16 * 1024, 0);
  let status = 0;
  res[b.callbacks.onHeadersComplete] = (_major: number, _minor: number, _headers: string[], _method: unknown, _url: unknown, code: number) => {
    status = code;
    return 0;
  };
  const n = res.execute(Buffer.from('HTTP/1.1 204 No Content\r\n\r\n'));
  res.close();
  if (n !== 27 || status !== 204) return 'response status';
  return undefined;
}

/** The functions a parser calls; `this` is the parser (its `owner` is the connection). */
export interface Handlers {
  onMessageBegin(this: Parser): void;
  onHeaders(this: Parser, headers: string[], url: string): void;
  onHeadersComplete(
    this: Parser,
    versionMajor: number,
    versionMinor: number,
    headers: string[] | undefined,
    method: number | undefined,
    url: string | undefined,
    statusCode: number | undefined,
    statusMessage: string | undefined,
    upgrade: boolean,
    keepAlive: boolean,
  ): number;
  onBody(this: Parser, chunk: Buffer): void;
  onMessageComplete(this: Parser): void;
  /** After a read the parser consumed (see consume()): bytes parsed, or the error. */
  onExecute(this: Parser, ret: number | ParseError): void;
}

/**
 * A free list of parsers of one type, as Node's own server keeps one
 * (`FreeList`): an idle keep-alive connection holds no parser, and a busy
 * one takes one back instead of allocating. Each parser gets `handlers`
 * once, when it is made.
 */
export class ParserPool {
  private readonly free: Parser[] = [];

  constructor(
    private readonly binding: ParserBinding,
    private readonly type: number,
    private readonly handlers: Handlers,
    private readonly max = 1000,
  ) {}

  /** A strict parser, ready for a new message, owned by `owner`. */
  take(owner: unknown, maxHeaderSize: number): Parser {
    let p = this.free.pop();
    if (!p) {
      p = this.binding.create();
      const c = this.binding.callbacks;
      p[c.onMessageBegin] = this.handlers.onMessageBegin;
      p[c.onHeaders] = this.handlers.onHeaders;
      p[c.onHeadersComplete] = this.handlers.onHeadersComplete;
      p[c.onBody] = this.handlers.onBody;
      p[c.onMessageComplete] = this.handlers.onMessageComplete;
      p[c.onExecute] = this.handlers.onExecute;
    }
    p.initialize(this.type, RESOURCE, maxHeaderSize, 0);
    p.owner = owner;
    return p;
  }

  /** Gives a parser back (its connection is idle or gone). */
  give(p: Parser): void {
    p.owner = undefined;
    p.remove();
    if (this.free.length < this.max) {
      p.free();
      this.free.push(p);
    } else p.close();
  }
}

/** A socket's libuv stream handle, as consume() and flow control need it. */
interface StreamHandle {
  isStreamBase?: boolean;
  _consumed?: boolean;
  reading: boolean;
  readStart(): number;
  readStop(): number;
}

function handleOf(socket: Socket): StreamHandle | undefined {
  const h = (socket as Socket & { _handle?: StreamHandle | null })._handle;
  return h && h.isStreamBase && typeof h.readStop === 'function' ? h : undefined;
}

/**
 * Hands the socket's reads to `parser` directly, as Node's own HTTP server
 * does: no JS Buffer, stream push or 'data' event per read. False (and
 * nothing changed) when the socket has no such handle; its 'data' events
 * then feed the parser.
 */
export function consume(parser: Parser, socket: Socket): boolean {
  const h = handleOf(socket);
  if (!h || h._consumed) return false;
  h._consumed = true;
  parser.consume(h);
  return true;
}

/** Gives the socket's reads back to its 'data' events. */
export function unconsume(parser: Parser, socket: Socket): void {
  parser.unconsume();
  const h = handleOf(socket);
  if (h) h._consumed = false;
}

/**
 * Stops or restarts reading, at the socket's handle, whether a parser
 * consumes it or its 'data' events do. The stream's own `reading` flag is
 * left set: it would otherwise restart a read it thinks is missing (its
 * maybeReadMore, or resume()), and bytes would reach a parser told to wait.
 * Drover never pauses the stream itself, so it never buffers either.
 */
export function setReading(socket: Socket, on: boolean): void {
  const h = handleOf(socket);
  if (!h) return;
  if (on) h.readStart();
  else h.readStop();
}

/** The async resource every parser reports to async_hooks (Drover uses none; AsyncLocalStorage writes to it, so it is not frozen). */
const RESOURCE = {};
