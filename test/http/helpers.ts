/** Helpers shared by the HTTP end-to-end tests (on top of test/fixtures/harness.ts). */
import { once } from 'node:events';
import type { Socket } from 'node:net';
import { connect, type TestBackend } from '../fixtures/harness.js';

export type Message = Record<string, unknown>;

/**
 * Records every IPC message a backend sends from now on, next to the
 * harness's own queue (which `next()` consumes), so a test can both wait for
 * one message and check afterwards that some other message never came.
 */
export interface MessageLog {
  readonly all: Message[];
  /** Resolves with the first message (past or future) that satisfies `pred`. */
  until(pred: (m: Message) => boolean): Promise<Message>;
  /** Messages seen so far that satisfy `pred`. */
  filter(pred: (m: Message) => boolean): Message[];
}

export function watchMessages(backend: TestBackend): MessageLog {
  const all: Message[] = [];
  const waiters: Array<{ pred: (m: Message) => boolean; resolve: (m: Message) => void }> = [];
  backend.child.on('message', (m: Message) => {
    all.push(m);
    for (const w of waiters.filter((w) => w.pred(m))) {
      waiters.splice(waiters.indexOf(w), 1);
      w.resolve(m);
    }
  });
  return {
    all,
    until: (pred) =>
      new Promise((resolve) => {
        const seen = all.find(pred);
        if (seen) resolve(seen);
        else waiters.push({ pred, resolve });
      }),
    filter: (pred) => all.filter(pred),
  };
}

export interface RawResponse {
  /** Everything the server sent before it closed the connection (latin1). */
  text: string;
  /** The status code of the first response, or 0 when nothing came back. */
  status: number;
  /** Lower-case header names of the first response. */
  headers: Record<string, string>;
  /** The body of the first response (everything after its header block). */
  body: string;
}

/** Splits the first response out of raw bytes from a server. */
export function parseRaw(text: string): RawResponse {
  const end = text.indexOf('\r\n\r\n');
  if (end < 0) return { text, status: 0, headers: {}, body: '' };
  const [statusLine, ...lines] = text.slice(0, end).split('\r\n');
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const colon = line.indexOf(':');
    headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(statusLine ?? '')?.[1] ?? 0);
  return { text, status, headers, body: text.slice(end + 4) };
}

/**
 * Sends raw bytes on a fresh connection and collects everything the server
 * sends until the connection closes (for whatever reason: end, reset).
 */
export async function rawSend(port: number, bytes: string | Buffer): Promise<RawResponse> {
  const s = await connect(port, { allowHalfOpen: true });
  const chunks: Buffer[] = [];
  s.on('data', (c: Buffer) => chunks.push(c));
  s.on('error', () => {});
  s.on('end', () => s.end());
  const gone = once(s, 'close');
  s.write(bytes);
  await gone;
  return parseRaw(Buffer.concat(chunks).toString('latin1'));
}

export { startCli, type Cli } from '../fixtures/harness.js';

/** One response read off a raw connection. */
export interface WireResponse {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
  /** Trailer fields of a chunked body (lower-case names). */
  trailers: Record<string, string>;
}

/**
 * A raw keep-alive client connection that reads responses one after another
 * off the byte stream (framed by Content-Length or chunked; `next(true)` for
 * an answer without a body, as to HEAD), so a test can pipeline requests and
 * check each answer against its own request.
 */
export class WireClient {
  private buf = Buffer.alloc(0);
  private waiting: (() => void) | undefined;
  /** True once the server closed the connection. */
  ended = false;
  readonly closed: Promise<void>;

  private constructor(readonly socket: Socket) {
    socket.on('data', (c: Buffer) => {
      this.buf = Buffer.concat([this.buf, c]);
      this.waiting?.();
    });
    socket.on('error', () => {});
    this.closed = new Promise((resolve) => {
      socket.once('close', () => {
        this.ended = true;
        this.waiting?.();
        resolve();
      });
    });
  }

  static async open(port: number): Promise<WireClient> {
    return new WireClient(await connect(port));
  }

  write(bytes: string | Buffer): void {
    this.socket.write(bytes);
  }

  /** Everything received and not yet read as a response. */
  get unread(): Buffer {
    return this.buf;
  }

  /** The next whole response; rejects if the connection closes first. */
  async next(noBody = false): Promise<WireResponse> {
    for (;;) {
      const r = this.take(noBody);
      if (r) return r;
      if (this.ended) throw new Error(`connection closed with ${this.buf.length} unread bytes: ${JSON.stringify(this.buf.toString('latin1').slice(0, 200))}`);
      await new Promise<void>((resolve) => (this.waiting = resolve));
      this.waiting = undefined;
    }
  }

  private take(noBody: boolean): WireResponse | undefined {
    const end = this.buf.indexOf('\r\n\r\n');
    if (end < 0) return undefined;
    const head = parseRaw(this.buf.subarray(0, end + 4).toString('latin1'));
    let at = end + 4;
    let body = Buffer.alloc(0);
    const trailers: Record<string, string> = {};
    if (noBody || head.status === 204 || head.status === 304 || (head.status >= 100 && head.status < 200)) {
      // no body
    } else if (head.headers['transfer-encoding'] === 'chunked') {
      const parts: Buffer[] = [];
      for (;;) {
        const lineEnd = this.buf.indexOf('\r\n', at);
        if (lineEnd < 0) return undefined;
        const size = parseInt(this.buf.subarray(at, lineEnd).toString('latin1'), 16);
        at = lineEnd + 2;
        if (size === 0) {
          for (;;) {
            const tEnd = this.buf.indexOf('\r\n', at);
            if (tEnd < 0) return undefined;
            const line = this.buf.subarray(at, tEnd).toString('latin1');
            at = tEnd + 2;
            if (line === '') break;
            const colon = line.indexOf(':');
            trailers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
          }
          break;
        }
        if (this.buf.length < at + size + 2) return undefined;
        parts.push(this.buf.subarray(at, at + size));
        at += size + 2;
      }
      body = Buffer.concat(parts);
    } else if (head.headers['content-length'] !== undefined) {
      const n = Number(head.headers['content-length']);
      if (this.buf.length < at + n) return undefined;
      body = this.buf.subarray(at, at + n);
      at += n;
    } else {
      // Close-delimited: whole once the server closed.
      if (!this.ended) return undefined;
      body = this.buf.subarray(at);
      at = this.buf.length;
    }
    this.buf = this.buf.subarray(at);
    return { status: head.status, headers: head.headers, body: Buffer.from(body), trailers };
  }

  destroy(): void {
    this.socket.destroy();
  }
}
