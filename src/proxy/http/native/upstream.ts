import { connect as netConnect, type Socket } from 'node:net';
import type { Backend } from '../../../../strategies/index.js';
import type { Exchange } from './exchange.js';
import type { UpstreamHost } from './contracts.js';
import { consume, PAUSE, setReading, unconsume, type Handlers, type ParseError, type Parser } from './parser.js';

/**
 * Upstream connections of the native engine: one keep-alive pool per
 * backend, each connection read by its own llhttp response parser. A
 * connection carries one request at a time and goes back to the pool only
 * after a clean end of both messages with nothing unasked-for behind them;
 * anything else closes it.
 */

/** The idle and busy connections to one backend. */
export class Pool {
  readonly idle: UpstreamConnection[] = [];
  /** Connections carrying (or connecting for) a request. */
  busy = 0;

  constructor(
    readonly backend: Backend,
    private readonly host: UpstreamHost,
  ) {}

  /** Whether another request may start on this backend under `maxSockets`. */
  room(maxSockets: number): boolean {
    return this.busy < maxSockets;
  }

  /** The most recently used idle connection (its socket is warm), or a new one. */
  acquire(exchange: Exchange): UpstreamConnection {
    this.busy++;
    const c = this.idle.pop() ?? new UpstreamConnection(this, this.host);
    c.exchange = exchange;
    return c;
  }

  /** A connection whose exchange ended cleanly: idle for at most `keepAlive` ms. */
  park(c: UpstreamConnection, keepAlive: number): void {
    if (this.host.draining) return c.destroy();
    this.busy--;
    this.host.slotFreed();
    c.exchange = null;
    c.sent = false;
    // An idle connection is read, so a close or an unasked-for byte is seen at once.
    c.reading(true);
    c.idleUntil = this.host.now() + keepAlive;
    this.idle.push(c);
  }

  /** A connection is gone (or will be): it no longer counts. */
  forget(c: UpstreamConnection, wasBusy: boolean): void {
    if (wasBusy) {
      this.busy--;
      this.host.slotFreed();
    } else {
      const i = this.idle.indexOf(c);
      if (i >= 0) this.idle.splice(i, 1);
    }
  }

  /** Closes idle connections past their keep-alive time; true when the pool is empty. */
  sweep(now: number): boolean {
    for (let i = this.idle.length - 1; i >= 0; i--) if (this.idle[i]!.idleUntil <= now) this.idle[i]!.destroy();
    return this.busy === 0 && this.idle.length === 0;
  }

  /** Closes every idle connection (busy ones end with their exchange). */
  closeIdle(): void {
    for (const c of [...this.idle]) c.destroy();
  }
}

/** One TCP connection to a backend. */
export class UpstreamConnection {
  readonly socket: Socket;
  /** The request it carries; null while idle in its pool. */
  exchange: Exchange | null = null;
  connected = false;
  /** The current exchange's request has been written to it: bytes before that are unasked-for. */
  sent = false;
  idleUntil = 0;
  /** The current response is complete (set inside the parser, acted on after it). */
  complete = false;
  /** Bytes came that nobody asked for: never reused. */
  poisoned = false;
  destroyed = false;
  /** An accepted upgrade: bytes pass raw, the parser is done. */
  tunnel = false;
  /** The parser reads the socket's handle directly (see consume()). */
  private consumed = false;
  /** Reading is stopped (the client is not taking what it sends). */
  private held = false;
  /** Inside the parser's callbacks: it may not be freed now. */
  private inParser = false;
  private parserGiven = false;
  private parser: Parser;

  constructor(
    readonly pool: Pool,
    private readonly host: UpstreamHost,
  ) {
    this.parser = host.responseParsers.take(this, 16 * 1024);
    this.socket = netConnect({ host: pool.backend.host, port: pool.backend.port, noDelay: true });
    this.socket.on('connect', onConnect);
    this.socket.on('data', onData);
    this.socket.on('end', onEnd);
    this.socket.on('error', onError);
    this.socket.on('close', onClose);
    this.socket.on('drain', onDrain);
    (this.socket as OwnedSocket).owner = this;
  }


  /** Closes the connection now; its exchange (if any) has already been told or is the caller. */
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.pool.forget(this, this.exchange !== null);
    this.exchange = null;
    this.socket.destroy();
    // Never freed inside its own callbacks: afterExecute() gives it back then.
    if (!this.inParser) this.releaseParser();
  }

  private releaseParser(): void {
    if (this.parserGiven) return;
    this.parserGiven = true;
    this.stopConsuming();
    this.host.responseParsers.give(this.parser);
  }

  /** Connected: from now on the parser reads the socket directly. */
  connectedNow(): void {
    this.connected = true;
    this.consumed = consume(this.parser, this.socket);
  }

  /** Response bytes through 'data' events (before connecting, or while no parser consumes the socket). */
  read(chunk: Buffer): void {
    const ex = this.exchange;
    if (ex && this.tunnel) return ex.tunnelData(chunk);
    if (!ex) {
      // An idle connection that speaks unasked: whatever it says belongs to no request.
      this.poisoned = true;
      return this.destroy();
    }
    this.afterExecute(this.parser.execute(chunk), chunk);
  }

  /** After the parser took a read (`chunk` when it came through 'data'): the exchange acts on what it completed. */
  afterExecute(r: number | ParseError, chunk: Buffer | undefined): void {
    this.inParser = false;
    if (this.destroyed) return this.releaseParser();
    const ex = this.exchange;
    if (!ex || (this.poisoned && !this.sent)) {
      // Bytes on an idle connection, or on one taken for a request not yet written: they belong to no request.
      this.poisoned = true;
      this.destroy();
      if (ex) ex.upstreamClosed(this, Object.assign(new Error('backend sent bytes nobody asked for'), { code: 'ECONNRESET' }));
      return;
    }
    let leftover: Buffer | undefined;
    if (typeof r !== 'number') {
      // After a complete response, even garbage is only an unasked-for extra: the answer stands.
      if (this.complete || this.poisoned) this.poisoned = true;
      else ex.responseInvalid(this, r);
    } else if (ex.tunnelling && this.exchange === ex) {
      // A 101: the rest of this read is the new protocol's, and so is everything after it.
      leftover = (chunk ?? this.parser.getCurrentBuffer()).subarray(r);
      this.stopConsuming();
    }
    this.afterRead(ex, leftover);
  }

  /** After a read: a completed response releases the connection, then the exchange moves on. */
  private afterRead(ex: Exchange, leftover: Buffer | undefined): void {
    if (ex.tunnelling) return ex.batchEnd(leftover);
    if (this.complete) {
      this.complete = false;
      ex.responseComplete(this);
    }
    ex.batchEnd(undefined);
  }

  /** Stops or restarts reading (backpressure from the client). */
  reading(on: boolean): void {
    if (this.destroyed || this.held === !on) return;
    this.held = !on;
    setReading(this.socket, on);
  }

  private stopConsuming(): void {
    if (!this.consumed) return;
    unconsume(this.parser, this.socket);
    this.consumed = false;
  }

  /** The backend closed its side: a close-delimited response ends here, anything else was cut short. */
  ended(): void {
    const ex = this.exchange;
    if (!ex) return this.destroy();
    if (this.tunnel) return ex.upstreamClosed(this, undefined);
    const r = this.parser.finish();
    this.inParser = false;
    if (this.destroyed) return this.releaseParser();
    if (r) ex.responseInvalid(this, r);
    this.afterRead(ex, undefined);
    if (this.exchange === ex) ex.upstreamClosed(this, undefined);
  }

  // Parser callbacks, bound to the parser: `this.owner` is the connection.

  static readonly handlers: Handlers = {
    onMessageBegin(this: Parser) {
      const c = this.owner as UpstreamConnection;
      c.inParser = true;
      // A response begins after the last one completed, or before the request went out: unasked-for.
      if (!c.exchange || c.exchange.responseFinished || !c.sent) c.poisoned = true;
    },
    onHeaders(this: Parser, headers: string[]) {
      const c = this.owner as UpstreamConnection;
      c.inParser = true;
      c.exchange?.responseHeaderPart(headers);
    },
    onHeadersComplete(this: Parser, _major, minor, headers, _method, _url, status, message, upgrade, keepAlive) {
      const c = this.owner as UpstreamConnection;
      c.inParser = true;
      if (c.poisoned || !c.exchange) return PAUSE;
      return c.exchange.responseHead(c, minor, headers, status ?? 0, message ?? '', upgrade, keepAlive);
    },
    onBody(this: Parser, chunk: Buffer) {
      const c = this.owner as UpstreamConnection;
      c.inParser = true;
      if (!c.poisoned) c.exchange?.responseBody(chunk);
    },
    onMessageComplete(this: Parser) {
      const c = this.owner as UpstreamConnection;
      c.inParser = true;
      if (c.poisoned || !c.exchange) return;
      if (c.exchange.responseEnd()) c.complete = true;
    },
    onExecute(this: Parser, ret: number | ParseError) {
      (this.owner as UpstreamConnection | undefined)?.afterExecute(ret, undefined);
    },
  };
}

type OwnedSocket = Socket & { owner: UpstreamConnection };

function owner(s: Socket): UpstreamConnection {
  return (s as OwnedSocket).owner;
}

function onConnect(this: Socket): void {
  const c = owner(this);
  c.connectedNow();
  c.exchange?.upstreamConnected(c);
}

function onData(this: Socket, chunk: Buffer): void {
  owner(this).read(chunk);
}

function onEnd(this: Socket): void {
  owner(this).ended();
}

function onError(this: Socket, err: Error): void {
  const c = owner(this);
  const ex = c.exchange;
  if (ex) ex.upstreamClosed(c, err);
  c.destroy();
}

function onClose(this: Socket): void {
  const c = owner(this);
  const ex = c.exchange;
  if (ex) ex.upstreamClosed(c, undefined);
  c.destroy();
}

function onDrain(this: Socket): void {
  owner(this).exchange?.upstreamDrained();
}

/** For the parse error's reason in logs. */
export function describeParseError(e: ParseError): string {
  return `${e.code}${e.reason ? `: ${e.reason}` : ''}`;
}
