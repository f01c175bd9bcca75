import type { Socket } from 'node:net';
import { localAnswer, parseRefusal, serializeAnswer } from '../answers.js';
import type { Refusal, RequestHead } from '../request.js';
import { HOLD_BODY, HOLD_DOWNSTREAM, HOLD_PIPELINE, HOLD_UPGRADE, HOLD_UPSTREAM, type ClientHost, type ExchangeClient } from './contracts.js';
import { Exchange } from './exchange.js';
import { consume, PAUSE, setReading, unconsume, type Handlers, type ParseError, type Parser } from './parser.js';
import type { UpstreamConnection } from './upstream.js';

/** After Drover closed its side, how long a client may go on sending (read and dropped) before it is cut off. */
export const LINGER_MS = 2000;

/** A keep-alive connection idle this long gives its parser back. */
const PARSER_IDLE_MS = 1000;

/** Request headers are limited to this many bytes, as in node:http. */
export const MAX_HEADER_SIZE = 16 * 1024;

/**
 * One client connection of the native engine. Requests are parsed by a
 * strict llhttp parser and answered strictly in order, one at a time: when a
 * pipelined request's head arrives while the previous answer is still under
 * way, the parser stops right after that head and the socket stops being
 * read, so a client holds at most one backend slot and nothing behind a
 * request answered with `Connection: close` is ever forwarded.
 */
export class ClientConnection implements ExchangeClient {
  exchange: Exchange | null = null;
  readonly peer: string | undefined;
  requestStarted = 0;
  lastActive: number;
  private parser: Parser | null = null;
  /** A pipelined head parsed while the previous request was still answered. */
  private pendingHead: RequestHead | null = null;
  /** Bytes after the point where the parser stopped. */
  private stash: Buffer | null = null;
  /** Bytes after an upgrade request, held until the backend accepts or declines it. */
  private upgradeRest: Buffer[] | null = null;
  /** A malformed request behind the one being answered, refused once that one is done. */
  private deferred: Refusal | null = null;
  private out: Array<string | Buffer> = [];
  private holds = 0;
  /** Inside the parser (its callbacks run): nothing may re-enter or free it. */
  private parsing = false;
  /** The parser reads the socket's handle directly (see consume()). */
  private consumed = false;
  private dropDue = false;
  private drainHeard = false;
  private advancing = false;
  private advanceDue = false;
  private closing = false;
  private fresh = true;
  private lingerUntil = 0;
  private headerParts: string[] | null = null;
  private urlPart = '';
  /** Between a head and the end of its message: header parts the parser hands over now are trailers. */
  private inBody = false;
  private tunnelUp: UpstreamConnection | null = null;
  destroyed = false;

  constructor(
    readonly socket: Socket,
    readonly host: ClientHost,
  ) {
    this.peer = socket.remoteAddress;
    this.lastActive = host.now();
    (socket as OwnedSocket).owner = this;
    socket.on('data', onData);
    socket.on('end', onEnd);
    socket.on('error', onError);
    socket.on('close', onClose);
    // Parsed from the first byte on: no JS Buffer per read (see consume()).
    this.attachParser();
  }

  // Output ---------------------------------------------------------------------

  push(piece: string | Buffer): void {
    this.out.push(piece);
  }

  get queued(): number {
    return this.out.length;
  }

  unpush(mark: number): void {
    this.out.length = Math.min(this.out.length, mark);
  }

  /** Writes everything queued in one batch (one writev), then ends the socket if closing. */
  flush(): void {
    const out = this.out;
    if (this.destroyed) {
      out.length = 0;
      return;
    }
    if (out.length > 0) {
      const s = this.socket;
      if (out.length === 1) write(s, out[0]!);
      else if (small(out)) {
        // One string, one write: cheaper than a writev of a head and a small body.
        let text = '';
        for (const piece of out) text += typeof piece === 'string' ? piece : piece.toString('latin1');
        s.write(text, 'latin1');
      } else {
        s.cork();
        for (const piece of out) write(s, piece);
        s.uncork();
      }
      this.out = [];
      this.lastActive = this.host.now();
      // A client that does not read slows its backend down, and is not read
      // itself (no more requests, no more answers), never Drover's memory.
      if (s.writableNeedDrain) {
        this.exchange?.up?.reading(false);
        this.hold(HOLD_DOWNSTREAM, true);
        // Listened to only once needed: most connections never fill their socket.
        if (!this.drainHeard) {
          this.drainHeard = true;
          s.on('drain', onDrain);
        }
      }
    }
    if (this.closing && this.lingerUntil === 0) this.linger();
  }

  // Reading --------------------------------------------------------------------

  /** Bytes from the client, through its 'data' events (while no parser consumes the socket). */
  read(chunk: Buffer): void {
    if (this.tunnelUp) {
      this.lastActive = this.host.now();
      if (!this.tunnelUp.socket.write(chunk)) this.hold(HOLD_UPSTREAM, true);
      return;
    }
    if (this.closing) return; // lingering: read and dropped
    if (this.upgradeRest) {
      this.upgradeRest.push(chunk);
      return this.hold(HOLD_UPGRADE, true);
    }
    this.execute(chunk);
    this.flush();
  }

  /** A read the consuming parser has just parsed (`ret`: bytes, or its error). */
  executed(ret: number | ParseError): void {
    this.afterExecute(ret, undefined);
    this.flush();
  }

  private execute(chunk: Buffer): void {
    const p = this.parser ?? this.attachParser();
    this.parsing = true;
    this.afterExecute(p.execute(chunk), chunk);
  }

  /** A parser for the next request; it consumes the socket from now on, as Node's own server does. */
  private attachParser(): Parser {
    const p = this.host.requestParsers.take(this, MAX_HEADER_SIZE);
    this.parser = p;
    this.consumed = consume(p, this.socket);
    return p;
  }

  /**
   * After a read was parsed (`chunk` when it came through 'data', else the
   * consuming parser has it): a pipelined head stopped the parser, an
   * upgrade ended the HTTP part, or the bytes were malformed.
   */
  private afterExecute(r: number | ParseError, chunk: Buffer | undefined): void {
    this.parsing = false;
    // Bytes count as activity only when they carry a request: blank lines
    // between requests (which llhttp skips) must not keep a connection alive.
    if (this.exchange || this.requestStarted !== 0 || this.pendingHead) this.lastActive = this.host.now();
    const p = this.parser!;
    if (typeof r === 'number') {
      if (this.upgradeRest && !this.tunnelUp) {
        const rest = (chunk ?? p.getCurrentBuffer()).subarray(r);
        if (rest.length) this.upgradeRest.push(rest);
        this.hold(HOLD_UPGRADE, true);
        this.stopConsuming();
      }
    } else if (r.code === 'HPE_PAUSED') {
      this.stash = (chunk ?? p.getCurrentBuffer()).subarray(r.bytesParsed);
      this.hold(HOLD_PIPELINE, true);
    } else this.parseError(r);
    if (this.dropDue) this.dropParser();
    if (this.advanceDue) this.advance();
  }

  /** Later reads come through 'data' events again (upgrades, lingering). */
  private stopConsuming(): void {
    if (!this.consumed || !this.parser) return;
    unconsume(this.parser, this.socket);
    this.consumed = false;
  }


  private parseError(e: ParseError): void {
    // Already answered and closing: what follows is read and dropped, not refused again.
    if (this.closing) return;
    const refusal = parseRefusal(e.code, e.reason);
    const ex = this.exchange;
    if (ex && !ex.requestDone) return ex.requestInvalid(refusal);
    // Garbage behind a request still being answered: refused once that answer is out.
    if (ex) {
      this.deferred = refusal;
      return this.hold(HOLD_PIPELINE, true);
    }
    this.refuse(refusal);
  }

  /** Answers a request that never became an exchange (the parser refused it) and closes. */
  private refuse(refusal: Refusal): void {
    this.push(serializeAnswer(localAnswer(refusal.status, refusal.code, refusal.message), true));
    this.closing = true;
  }

  /** Stops or resumes reading for one reason; the socket reads while no reason holds. */
  hold(bit: number, on: boolean): void {
    const before = this.holds;
    this.holds = on ? this.holds | bit : this.holds & ~bit;
    if (before === 0 && this.holds !== 0) setReading(this.socket, false);
    else if (before !== 0 && this.holds === 0 && !this.destroyed) setReading(this.socket, true);
  }

  // Requests ---------------------------------------------------------------------

  private startExchange(head: RequestHead, began: number): void {
    const ex = new Exchange(this, head, began);
    this.exchange = ex;
    ex.start();
  }

  exchangeDone(close: boolean): void {
    this.exchange = null;
    if (close || this.host.draining) this.closing = true;
    if (this.parsing || this.advancing) this.advanceDue = true;
    else this.advance();
  }

  /**
   * The current request is answered: the next one that waited behind it
   * starts, and the parser goes on where it stopped. A loop, not recursion:
   * a thousand pipelined requests answered by Drover itself stay flat.
   */
  private advance(): void {
    if (this.advancing) return;
    this.advancing = true;
    try {
      while (!this.exchange && !this.destroyed) {
        this.advanceDue = false;
        if (this.closing) break;
        if (this.deferred) {
          this.refuse(this.deferred);
          this.deferred = null;
          break;
        }
        if (this.upgradeRest && !this.tunnelUp) {
          // A declined upgrade: the bytes after it are read as HTTP again, by a fresh parser.
          const rest = this.upgradeRest;
          this.upgradeRest = null;
          this.dropParser();
          this.stash = rest.length ? Buffer.concat(this.stash ? [...rest, this.stash] : rest) : this.stash;
          this.hold(HOLD_UPGRADE, false);
        }
        // Answers not taken yet: the next request waits until the client reads.
        if (this.holds & HOLD_DOWNSTREAM) break;
        if (this.pendingHead) {
          const head = this.pendingHead;
          this.pendingHead = null;
          // Its deadline counts from now: waiting behind another answer holds no backend slot.
          this.startExchange(head, this.host.now());
          this.parser!.resume();
        }
        const stash = this.stash;
        if (!stash) break;
        this.stash = null;
        this.hold(HOLD_PIPELINE, false);
        this.execute(stash);
      }
    } finally {
      this.advancing = false;
    }
    if (!this.stash && !this.pendingHead && !this.deferred) this.hold(HOLD_PIPELINE, false);
    // With many connections open, an idle one gives its parser back at once (memory over speed).
    if (this.host.crowded) this.releaseParser(this.host.now(), 0);
    this.flush();
  }

  /**
   * An idle keep-alive connection holds no parser (Node's servers pool them
   * the same way): given back a second after the last request, so a busy
   * connection keeps its own.
   */
  private releaseParser(now: number, idleMs = PARSER_IDLE_MS): void {
    if (this.parser && !this.exchange && !this.pendingHead && !this.stash && !this.upgradeRest && this.requestStarted === 0 && now - this.lastActive >= idleMs) {
      this.dropParser();
    }
  }

  private dropParser(): void {
    if (this.parsing) {
      // Never inside its own callbacks: after this read.
      this.dropDue = true;
      return;
    }
    this.dropDue = false;
    if (!this.parser) return;
    this.stopConsuming();
    this.host.requestParsers.give(this.parser);
    this.parser = null;
  }

  // Upgrades -----------------------------------------------------------------------

  tunnel(up: UpstreamConnection): void {
    this.tunnelUp = up;
    up.tunnel = true;
    const rest = this.upgradeRest;
    this.upgradeRest = null;
    this.dropParser();
    if (rest) for (const b of rest) up.socket.write(b);
    this.hold(HOLD_UPGRADE, false);
  }

  // Time, ends -----------------------------------------------------------------------

  /** Deadlines: headers, the whole request, idleness, the attempt's own; called by the listener's sweep. */
  check(now: number): void {
    if (this.destroyed) return;
    const t = this.host.config.timeouts;
    if (this.lingerUntil) {
      if (now >= this.lingerUntil) this.destroy();
      return;
    }
    if (this.tunnelUp) {
      if (now - this.lastActive >= t.idle) this.destroy();
      return;
    }
    const ex = this.exchange;
    if (ex) {
      ex.check(now);
      if (this.exchange === ex && !ex.requestDone && now - ex.began >= t.request) ex.requestTimedOut();
      else if (this.exchange === ex && !ex.waitingForBackend && now - this.lastActive >= t.idle) return this.destroy();
      return this.flush();
    }
    if (this.requestStarted !== 0) {
      if (now - this.requestStarted >= t.headers) {
        this.refuse(parseRefusal('ERR_HTTP_REQUEST_TIMEOUT', ''));
        this.flush();
      }
      return;
    }
    const limit = this.fresh ? Math.min(t.headers, t.idle) : t.idle;
    if (now - this.lastActive >= limit) this.destroy();
    else this.releaseParser(now);
  }

  /**
   * The listener drains: an idle keep-alive connection closes now, a busy one
   * after its answer. One that has sent nothing yet may have its first request
   * on the wire: it is left to send it (answered with `Connection: close`) or
   * to the headers timeout, as node:http does.
   */
  drain(): void {
    if (!this.fresh && !this.exchange && this.requestStarted === 0 && !this.tunnelUp) this.destroy();
  }

  /** Ends Drover's side after what was written and reads (and drops) what the client still sends, for a while. */
  private linger(): void {
    this.lingerUntil = this.host.now() + LINGER_MS;
    this.dropParser();
    this.socket.end();
    this.hold(HOLD_PIPELINE | HOLD_UPGRADE | HOLD_BODY | HOLD_UPSTREAM, false);
  }

  /**
   * The client shut its sending side. Between requests that is a goodbye;
   * during one it is taken as the client going away (as nginx does without
   * proxy_ignore_client_abort): its request is aborted upstream.
   */
  ended(): void {
    if (this.exchange || this.tunnelUp || this.closing || this.pendingHead || this.stash) return this.destroy();
    this.closing = true;
    this.flush();
  }

  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.out.length = 0;
    this.socket.destroy();
  }

  /** The socket is gone: the request in flight (if any) ends with it. */
  gone(): void {
    this.destroyed = true;
    const ex = this.exchange;
    this.exchange = null;
    ex?.clientGone();
    this.dropParser();
    this.host.closed(this);
  }

  /** The client can take more: its backend and the client itself are read again. */
  drained(): void {
    this.lastActive = this.host.now();
    this.hold(HOLD_DOWNSTREAM, false);
    this.exchange?.clientDrained();
    if (!this.exchange) this.advance();
  }

  // Parser callbacks (request side) ------------------------------------------------------

  static readonly handlers: Handlers = {
    onMessageBegin(this: Parser) {
      const c = this.owner as ClientConnection;
      c.parsing = true;
      c.fresh = false;
      c.requestStarted = c.host.now();
    },
    onHeaders(this: Parser, headers: string[], url: string) {
      const c = this.owner as ClientConnection;
      // Header parts after the head are a chunked body's trailers: not passed on.
      if (c.inBody) return;
      (c.headerParts ??= []).push(...headers);
      c.urlPart += url;
    },
    onHeadersComplete(this: Parser, major, minor, fields, method, url, _status, _message, upgrade, keepAlive) {
      const c = this.owner as ClientConnection;
      c.parsing = true;
      const headers = c.headerParts ? c.headerParts.concat(fields ?? []) : (fields ?? []);
      const head: RequestHead = {
        // An empty method is one llhttp knows and Node does not name: checkRequest answers 501.
        method: c.host.methods[method ?? -1] ?? '',
        target: c.urlPart + (url ?? ''),
        versionMajor: major,
        versionMinor: minor,
        headers,
        upgrade,
        keepAlive,
      };
      c.headerParts = null;
      c.urlPart = '';
      c.inBody = true;
      // One request at a time, and none while the client is not taking its answers.
      if (c.exchange || c.closing || c.holds & HOLD_DOWNSTREAM) {
        c.pendingHead = head;
        return PAUSE;
      }
      c.startExchange(head, c.requestStarted);
      return 0;
    },
    onBody(this: Parser, chunk: Buffer) {
      const c = this.owner as ClientConnection;
      c.parsing = true;
      c.exchange?.requestBody(chunk);
    },
    onMessageComplete(this: Parser) {
      const c = this.owner as ClientConnection;
      c.parsing = true;
      c.requestStarted = 0;
      c.inBody = false;
      const ex = c.exchange;
      // An upgrade's message is over: the bytes after it wait until the backend accepts or declines.
      if (ex?.head.upgrade) c.upgradeRest ??= [];
      ex?.requestEnd();
    },
    onExecute(this: Parser, ret: number | ParseError) {
      (this.owner as ClientConnection).executed(ret);
    },
  };
}

type OwnedSocket = Socket & { owner: ClientConnection };

/** Below this many bytes a batch is sent as one string. */
const SMALL_BATCH = 8 * 1024;

function small(out: ReadonlyArray<string | Buffer>): boolean {
  let n = 0;
  for (const piece of out) if ((n += piece.length) > SMALL_BATCH) return false;
  return true;
}

function write(s: Socket, piece: string | Buffer): void {
  if (typeof piece === 'string') s.write(piece, 'latin1');
  else s.write(piece);
}

function onData(this: Socket, chunk: Buffer): void {
  (this as OwnedSocket).owner.read(chunk);
}

function onEnd(this: Socket): void {
  (this as OwnedSocket).owner.ended();
}

function onError(this: Socket): void {
  (this as OwnedSocket).owner.destroy();
}

function onClose(this: Socket): void {
  (this as OwnedSocket).owner.gone();
}

function onDrain(this: Socket): void {
  (this as OwnedSocket).owner.drained();
}
