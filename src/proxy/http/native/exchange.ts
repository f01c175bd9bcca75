import { randomUUID } from 'node:crypto';
import type { Backend } from '../../../../strategies/index.js';
import type { Waiter } from '../../../balancer/queue.js';
import type { RequestObservation } from '../../../metrics/observer.js';
import type { ServiceEntry } from '../../listener.js';
import { localAnswer, serializeAnswer } from '../answers.js';
import { afterFailure, allFailed, Attempt, invalidResponse, noBackend, queueFull, queueTimeout, replayable, RETRY_BODY_LIMIT, type AttemptFailure } from '../delivery.js';
import { allowedTrailers, downstreamHeaders, unsupportedCoding, upstreamHeaders } from '../headers.js';
import { checkRequest, headerValue, isRefusal, type CheckedRequest, type Refusal, type RequestHead } from '../request.js';
import { matchRoute } from '../routes.js';
import { HOLD_BODY, HOLD_UPSTREAM, type ExchangeClient, type ExchangeHost } from './contracts.js';
import { PAUSE, type ParseError } from './parser.js';
import { describeParseError, type Pool, type UpstreamConnection } from './upstream.js';
import { chunkHead, CONTINUE, framingLine, headerLines, lastChunk, VALID_REASON } from './wire.js';

/**
 * Past an early answer (a backend that answered before reading the whole
 * upload), up to this much of the rest of the body is read and thrown away
 * to keep the client's connection; more, or an unknown amount, closes it
 * after the answer (HAProxy and nginx drain the same way).
 */
export const DRAIN_LIMIT = 1024 * 1024;

type Phase = 'new' | 'body' | 'queued' | 'connecting' | 'sending' | 'waiting' | 'responding' | 'tunnel' | 'done';

/**
 * One request on a client connection, from its head to the end of its
 * answer: routing, the body held for a retry, the attempts on backends with
 * their accounting, the response relayed (re-framed where needed) and the
 * local answers. Engine-neutral decisions come from request.ts, headers.ts,
 * routes.ts and delivery.ts; this class moves bytes and keeps time.
 */
export class Exchange implements Waiter {
  phase: Phase = 'new';
  private checked: CheckedRequest | undefined;
  private seen: RequestObservation | undefined;
  private entry: ServiceEntry | undefined;
  private service = '';
  private clientAddress: string | undefined;
  private upstreamHead = '';
  /** Body bytes held for a retry or until a backend is connected. */
  private held: Buffer[] = [];
  private heldBytes = 0;
  private bodyBytes = 0;
  /** Every body byte so far is in `held` (none was streamed past it). */
  private whole = true;
  requestDone = false;
  /** The client's body could not be read to its end (a parse error in it). */
  private requestBroken = false;
  private requestSent = false;
  private upChunked = false;
  private candidates: Backend[] | undefined;
  private nextCandidate = 0;
  private tried = 0;
  /** The backend tried last, for logs. */
  private backend = '';
  private attempt: Attempt | undefined;
  up: UpstreamConnection | undefined;
  private connectBy = 0;
  private responseBy = 0;
  private status = 0;
  private interim = false;
  private responseStarted = false;
  private headSent = false;
  responseFinished = false;
  private upKeepAlive = false;
  private downChunked = false;
  private wantsTrailers = false;
  private responseParts: string[] | undefined;
  private responseTrailers: string[] | undefined;
  private closeAfter = false;
  private draining = false;
  private batchMark = 0;
  tunnelling = false;
  private readonly drainClose = (): void => this.client.destroy();

  constructor(
    private readonly client: ExchangeClient,
    readonly head: RequestHead,
    /** When the request began, for `timeouts.request`. */
    readonly began: number,
  ) {}

  private get host(): ExchangeHost {
    return this.client.host;
  }

  /** The head is parsed: check, route, and pick a backend once the body allows. */
  start(): void {
    const { head, host } = this;
    const checked = checkRequest(head);
    // An upgrade is counted as a connection once tunnelled, not as a request (in every engine).
    if (isRefusal(checked) || !checked.upgradeTo) this.seen = host.observer?.request(head.method, head.target, this.client.peer, head.headers);
    if (isRefusal(checked)) return this.answer(checked);
    this.checked = checked;
    if (this.seen) this.seen.path = checked.path;
    const route = matchRoute(host.config.routes, { method: head.method, host: checked.host, path: checked.path, headers: head.headers });
    if (!route) return this.answer({ status: 404, code: 'DROVER_NO_ROUTE', message: `no route for ${head.method} ${checked.host ?? ''}${checked.path}` });
    this.service = route.service;
    const entry = host.services.get(route.service);
    if (!entry) return this.answer(noBackend(route.service));
    this.entry = entry;
    const peer = this.client.peer;
    const trusted = host.trust.has(peer);
    this.clientAddress = host.trust.clientAddress(peer, headerValue(head.headers, 'x-forwarded-for'));
    if (this.seen) {
      this.seen.service = route.service;
      this.seen.client = this.clientAddress;
    }
    const headers = upstreamHeaders(head.headers, {
      peer,
      trusted,
      host: checked.host,
      hostFromTarget: checked.hostFromTarget,
      requestId: this.seen?.generatedId ? this.seen.requestId : undefined,
      upgradeTo: checked.upgradeTo,
    });
    this.wantsTrailers = /(^|,)\s*trailers\s*(,|$)/i.test(headerValue(head.headers, 'te') ?? '');
    this.upstreamHead = `${head.method} ${checked.path} HTTP/1.1\r\n${headerLines(headers)}`;
    if (checked.expectContinue && checked.hasBody && head.versionMinor >= 1) this.client.push(CONTINUE);
    if (checked.hasBody) this.phase = 'body';
    else this.pick(false);
  }

  // The client's side ---------------------------------------------------------

  /** A piece of the request body. */
  requestBody(chunk: Buffer): void {
    this.bodyBytes += chunk.length;
    if (this.seen) this.seen.bytesIn += chunk.length;
    if (this.draining) return;
    const up = this.up;
    if (up && (this.phase === 'sending' || this.phase === 'waiting' || this.phase === 'responding') && !up.destroyed) {
      this.whole = false;
      this.writeUp(chunk);
      return;
    }
    this.held.push(chunk);
    this.heldBytes += chunk.length;
    if (this.heldBytes > RETRY_BODY_LIMIT) {
      this.whole = false;
      if (this.phase === 'body') this.pick(false);
      // The first 64 KB wait for the backend; the rest waits in the client's socket
      // (unless the pick answered at once: then the rest is read and dropped).
      if (this.phase !== 'sending' && !this.draining) this.client.hold(HOLD_BODY, true);
    }
  }

  /**
   * The request message ended. Its trailers (of a chunked body) are not
   * passed on: a whole body of 64 KB or less goes upstream with a length,
   * and a backend may not expect them.
   */
  requestEnd(): void {
    this.requestDone = true;
    if (this.draining) return this.maybeFinish();
    if (this.phase === 'body') this.pick(false);
    else if (this.up && !this.up.destroyed && (this.phase === 'sending' || this.phase === 'waiting' || this.phase === 'responding')) this.endUpstreamRequest();
    this.maybeFinish();
  }

  /** The client's body cannot be read on (a parse error inside it). */
  requestInvalid(refusal: Refusal): void {
    this.requestBroken = true;
    this.closeAfter = true;
    if (this.responseStarted) return this.maybeFinish();
    this.endAttempt();
    this.dropUpstream();
    this.answer(refusal);
  }

  /** The client connection closed or failed: everything of this request stops. */
  clientGone(): void {
    if (this.phase === 'done') return;
    this.entry?.balancer.queue.remove(this);
    this.endAttempt();
    this.dropUpstream();
    this.phase = 'done';
    this.seen?.finish(this.responseStarted ? this.status : undefined);
  }

  /** The whole request did not arrive within `timeouts.request`. */
  requestTimedOut(): void {
    if (this.responseStarted) return this.client.destroy();
    this.entry?.balancer.queue.remove(this);
    this.endAttempt();
    this.dropUpstream();
    this.closeAfter = true;
    this.answer({ status: 408, code: 'DROVER_REQUEST_TIMEOUT', message: `the request did not arrive within ${this.host.config.timeouts.request}ms` });
  }

  /** Deadlines of this request's attempt; called by the listener's sweep. */
  check(now: number): void {
    if (this.phase === 'connecting' && now >= this.connectBy) {
      const err = Object.assign(new Error(`connect timeout after ${this.connectTimeout()}ms`), { code: 'ETIMEDOUT' });
      this.failAttempt('connect', err);
    } else if (this.phase === 'waiting' && this.responseBy > 0 && now >= this.responseBy) {
      this.failAttempt('timeout', 'timeout');
    }
  }

  /** Whether the client's silence counts as idle now (not while the backend is thinking). */
  get waitingForBackend(): boolean {
    return this.phase === 'queued' || this.phase === 'connecting' || (this.phase === 'waiting' && this.requestDone);
  }

  // Choosing a backend ---------------------------------------------------------

  /** Starts an attempt on the next candidate with room, or queues, or answers. True unless it must keep waiting in the queue. */
  private pick(fromQueue: boolean): boolean {
    const entry = this.entry!;
    if (!this.candidates || fromQueue) {
      this.candidates = entry.balancer.candidates(this.clientAddress);
      this.nextCandidate = 0;
    }
    let full = false;
    while (this.nextCandidate < this.candidates.length) {
      const backend = this.candidates[this.nextCandidate++]!;
      const pool = this.host.pool(backend);
      if (!pool.room(entry.config.maxSockets)) {
        full = true;
        continue;
      }
      this.startAttempt(backend, pool);
      return true;
    }
    if (this.tried > 0) {
      this.answer(allFailed(this.service, this.tried));
      return true;
    }
    const states = entry.balancer.states;
    if (!full && !entry.balancer.backends.some((b) => states.full(b.id))) {
      this.host.observer?.noBackend(this.service);
      this.answer(noBackend(this.service));
      return true;
    }
    if (fromQueue) return false;
    const { size, timeout } = entry.config.queue;
    if (!entry.balancer.queue.add(this, size, timeout)) {
      this.answer(queueFull(this.service, size));
      return true;
    }
    this.phase = 'queued';
    return true;
  }

  retry(): boolean {
    if (this.phase !== 'queued') return true;
    const placed = this.pick(true);
    this.client.flush();
    return placed;
  }

  expire(why: 'timeout' | 'closed'): void {
    if (this.phase !== 'queued') return;
    const entry = this.entry!;
    this.answer(why === 'timeout' ? queueTimeout(this.service, entry.config.queue.timeout) : noBackend(this.service));
    this.client.flush();
  }

  private startAttempt(backend: Backend, pool: Pool): void {
    this.tried++;
    if (this.tried > 1) this.host.observer?.retry(this.service);
    this.backend = backend.id;
    if (this.seen) this.seen.backend = backend.id;
    this.attempt = new Attempt(this.entry!, backend, this.host.observer, this.drainClose);
    const up = pool.acquire(this);
    this.up = up;
    if (up.connected) return this.sendRequest();
    this.phase = 'connecting';
    this.connectBy = this.host.now() + this.connectTimeout();
  }

  private connectTimeout(): number {
    return this.host.config.timeouts.connect ?? this.entry!.config.timeouts.connect;
  }

  /** The upstream socket connected: the request goes out. */
  upstreamConnected(up: UpstreamConnection): void {
    if (up !== this.up || this.phase !== 'connecting') return;
    this.sendRequest();
  }

  /** Writes the head and whatever body is held, then the end of the request if it is complete. */
  private sendRequest(): void {
    const up = this.up!;
    const checked = this.checked!;
    this.phase = 'sending';
    this.requestSent = false;
    let framing: string;
    if (!checked.hasBody) framing = framingLine(checked.contentLength === 0 ? 0 : undefined, false);
    else if (this.requestDone && this.whole) framing = framingLine(this.heldBytes, false);
    else framing = framingLine(checked.chunked ? undefined : checked.contentLength, checked.chunked);
    this.upChunked = framing.startsWith('transfer-encoding');
    // An HTTP/1.0 request may come without Host; HTTP/1.1 to the backend needs one: its address.
    const host = checked.host === undefined ? `host: ${up.pool.backend.id}\r\n` : '';
    const head = `${this.upstreamHead}${host}${framing}\r\n`;
    const s = up.socket;
    up.sent = true;
    let ok: boolean;
    if (this.held.length === 0) ok = s.write(head, 'latin1');
    else {
      s.cork();
      s.write(head, 'latin1');
      for (const b of this.held) this.writeUp(b);
      s.uncork();
      ok = !s.writableNeedDrain;
    }
    if (!this.replayable()) {
      this.held = [];
    }
    this.client.hold(HOLD_BODY, false);
    if (!ok) this.client.hold(HOLD_UPSTREAM, true);
    if (this.requestDone) this.endUpstreamRequest();
  }

  private writeUp(chunk: Buffer): void {
    const s = this.up!.socket;
    let ok: boolean;
    if (this.upChunked) {
      // One writev for the size line, the data and its CRLF.
      s.cork();
      s.write(chunkHead(chunk.length), 'latin1');
      s.write(chunk);
      s.write('\r\n', 'latin1');
      s.uncork();
      ok = !s.writableNeedDrain;
    } else ok = s.write(chunk);
    if (!ok) this.client.hold(HOLD_UPSTREAM, true);
  }

  private endUpstreamRequest(): void {
    if (this.requestSent || this.requestBroken) return;
    if (this.upChunked) this.up!.socket.write(lastChunk(undefined), 'latin1');
    this.requestSent = true;
    if (this.phase === 'sending') {
      this.phase = 'waiting';
      // The response timeout counts from the request fully sent: a slow upload is not a slow backend.
      this.responseBy = this.host.now() + this.host.config.timeouts.response;
    }
  }

  /** The upstream socket can take more: the client is read again. */
  upstreamDrained(): void {
    this.client.hold(HOLD_UPSTREAM, false);
  }

  /** The client's socket can take more: the backend is read again. */
  clientDrained(): void {
    this.up?.reading(true);
  }

  private replayable(): boolean {
    return replayable(this.entry!, this.head.method, this.requestDone && this.whole && this.heldBytes <= RETRY_BODY_LIMIT);
  }

  // The backend's side -----------------------------------------------------------

  /** After a read from the backend: what it produced goes to the client in one write. */
  batchEnd(leftover: Buffer | undefined): void {
    if (leftover && leftover.length && this.tunnelling) this.client.push(leftover);
    const wasStarted = this.responseStarted;
    const up = this.up;
    this.client.flush();
    if (wasStarted) this.headSent = true;
    if (this.tunnelling && up && this.phase !== 'tunnel') {
      this.phase = 'tunnel';
      this.client.tunnel(up);
    }
  }

  /** Tunnel bytes from the backend. */
  tunnelData(chunk: Buffer): void {
    this.client.push(chunk);
    this.client.flush();
  }

  /** Response header fields in parts (over 32 of them), or the trailers once the head is out. */
  responseHeaderPart(headers: string[]): void {
    if (this.responseStarted) this.responseTrailers = (this.responseTrailers ?? []).concat(headers);
    else this.responseParts = (this.responseParts ?? []).concat(headers);
  }

  /** The response head: returns 1 to skip a HEAD response's body, PAUSE to stop reading. */
  responseHead(up: UpstreamConnection, minor: number, fields: string[] | undefined, status: number, reason: string, upgrade: boolean, keepAlive: boolean): number {
    if (up !== this.up) return PAUSE;
    const headers = this.responseParts ? this.responseParts.concat(fields ?? []) : (fields ?? []);
    this.responseParts = undefined;
    if (!VALID_REASON.test(reason)) reason = '';
    if (status >= 100 && status < 200 && status !== 101) {
      // Interim answers: 100 was Drover's to give; others (103 Early Hints) go to HTTP/1.1 clients.
      this.interim = true;
      if (status !== 100 && this.head.versionMinor >= 1) this.client.push(`HTTP/1.1 ${status} ${reason}\r\n${headerLines(downstreamHeaders(headers).headers)}\r\n`);
      return 0;
    }
    if (status < 100) {
      this.responseInvalid(up, `status ${status}`);
      return PAUSE;
    }
    if (status === 101) {
      if (!this.checked!.upgradeTo || !upgrade) {
        this.responseInvalid(up, '101 Switching Protocols to a request that asked for no upgrade');
        return PAUSE;
      }
      return this.startTunnel(headers, reason);
    }
    const coding = unsupportedCoding(headers);
    if (coding !== undefined) {
      this.responseInvalid(up, `transfer coding "${coding.slice(0, 40)}" is not supported`);
      return PAUSE;
    }
    const { headers: out, orca } = downstreamHeaders(headers);
    this.attempt!.answered(status, orca, this.host.log);
    this.seen?.answer(status);
    this.status = status;
    this.upKeepAlive = keepAlive;
    this.responseStarted = true;
    this.phase = 'responding';
    this.held = [];
    const noBody = this.head.method === 'HEAD' || status === 204 || status === 304;
    let framing = '';
    if (!noBody && headerValue(headers, 'transfer-encoding') === undefined && headerValue(headers, 'content-length') !== undefined) framing = '';
    else if (!noBody && this.head.versionMinor >= 1) {
      this.downChunked = true;
      framing = 'transfer-encoding: chunked\r\n';
    } else if (!noBody) this.closeAfter = true; // an HTTP/1.0 client: the close delimits the body
    if (!this.head.keepAlive || this.host.draining) this.closeAfter = true;
    if (!this.requestDone && !this.requestBroken) this.closeIfUndrainable();
    const connection = this.closeAfter ? 'connection: close\r\n' : this.head.versionMinor === 0 ? 'connection: keep-alive\r\n' : '';
    this.batchMark = this.client.queued;
    this.client.push(`HTTP/1.1 ${status} ${reason}\r\n${headerLines(out)}${framing}${connection}\r\n`);
    return this.head.method === 'HEAD' ? 1 : 0;
  }

  private startTunnel(headers: string[], reason: string): number {
    this.attempt!.answered(101, undefined, this.host.log);
    this.attempt!.tunnelled();
    this.seen?.answer(101);
    this.status = 101;
    this.responseStarted = true;
    this.tunnelling = true;
    this.client.push(`HTTP/1.1 101 ${reason}\r\n${headerLines(downstreamHeaders(headers, true).headers)}\r\n`);
    return 0;
  }

  responseBody(chunk: Buffer): void {
    if (!this.responseStarted || this.responseFinished) return;
    if (this.seen) this.seen.bytesOut += chunk.length;
    if (this.downChunked) {
      this.client.push(chunkHead(chunk.length));
      this.client.push(chunk);
      this.client.push('\r\n');
    } else this.client.push(chunk);
  }

  /** A response message ended; true when it was the final one (not a 1xx, not an upgrade). */
  responseEnd(): boolean {
    if (this.interim) {
      this.interim = false;
      return false;
    }
    if (this.tunnelling || !this.responseStarted) return false;
    if (this.downChunked) this.client.push(lastChunk(this.wantsTrailers && this.responseTrailers ? allowedTrailers(this.responseTrailers) : undefined));
    this.responseFinished = true;
    return true;
  }

  /** After the read that completed the response: the upstream connection is parked or closed, the slot freed. */
  responseComplete(up: UpstreamConnection): void {
    const reusable = this.upKeepAlive && this.requestSent && !up.poisoned && !this.requestBroken;
    this.up = undefined;
    if (reusable) up.pool.park(up, this.entry!.config.timeouts.keepAlive);
    else up.destroy();
    this.endAttempt();
    if (!this.requestDone) this.draining = true;
    // The upstream socket that was full is gone: the rest of the body is read (and dropped).
    this.client.hold(HOLD_UPSTREAM | HOLD_BODY, false);
    this.maybeFinish();
  }

  /** The backend's answer cannot be passed on: 502 while nothing was sent, else the client is cut off. */
  responseInvalid(up: UpstreamConnection, why: ParseError | string): void {
    if (up !== this.up) return;
    const reason = typeof why === 'string' ? why : describeParseError(why);
    this.host.log.debug('invalid response from backend', { listener: this.host.config.name, backend: up.pool.backend.id, reason });
    if (this.headSent) {
      this.attempt?.failed('invalid', 'invalid_response', 0);
      this.endAttempt();
      this.dropUpstream();
      return this.client.destroy();
    }
    // Nothing of it reached the client: take back what this read queued and answer 502.
    this.client.unpush(this.batchMark);
    this.responseStarted = false;
    this.downChunked = false;
    if (this.seen) {
      this.seen.answered = false;
      this.seen.bytesOut = 0;
    }
    this.attempt?.failed('invalid', 'invalid_response', 0);
    this.endAttempt();
    this.dropUpstream();
    this.answer(invalidResponse(up.pool.backend.id, reason));
  }

  /** The upstream connection closed or failed (`err`) before its response completed. */
  upstreamClosed(up: UpstreamConnection, err: Error | undefined): void {
    if (up !== this.up) return;
    // Nothing written yet (a pooled connection found closed or speaking unasked): nothing was delivered.
    const sent = up.sent;
    if (this.tunnelling) {
      this.endAttempt();
      this.dropUpstream();
      return this.client.destroy();
    }
    if (this.responseStarted) {
      // Cut short after the status line went out: all the client can be told is a close.
      this.endAttempt();
      this.dropUpstream();
      return this.client.destroy();
    }
    this.failAttempt(sent ? 'closed' : 'connect', err ?? Object.assign(new Error('backend closed the connection'), { code: 'ECONNRESET' }));
  }

  private failAttempt(failure: AttemptFailure, reason: Error | 'timeout'): void {
    const backend = this.attempt!.backend;
    const floor = failure === 'timeout' ? this.host.config.timeouts.response : this.connectTimeout();
    this.attempt!.failed(failure, reason, floor);
    this.host.log.debug('backend request failed', { listener: this.host.config.name, backend: backend.id, failure, error: reason });
    this.endAttempt();
    this.dropUpstream();
    this.client.hold(HOLD_UPSTREAM, false);
    const step = afterFailure(failure, failure === 'connect' || this.replayable(), backend.id, this.host.config.timeouts.response);
    if (step.retry) {
      this.phase = 'new';
      this.pick(false);
    } else this.answer(step.answer);
    this.client.flush();
  }

  private endAttempt(): void {
    this.attempt?.end();
    this.attempt = undefined;
  }

  private dropUpstream(): void {
    const up = this.up;
    this.up = undefined;
    up?.destroy();
  }

  // Answers and the end -----------------------------------------------------------

  /** Drover answers itself (a refusal, 404, 502, 503, 504); the rest of the request body is read and dropped. */
  private answer(refusal: Refusal): void {
    if (this.responseStarted) return this.client.destroy();
    this.entry?.balancer.queue.remove(this);
    const requestId = refusal.reason ? (this.seen?.requestId ?? headerValue(this.head.headers, 'x-request-id') ?? randomUUID()) : undefined;
    if (refusal.reason) this.host.failures.report(this.host.config.name, refusal, this.service, this.backend, requestId);
    const a = localAnswer(refusal.status, refusal.code, refusal.message, requestId);
    if (refusal.status === 400 || !this.head.keepAlive || this.host.draining || this.head.method === 'CONNECT') this.closeAfter = true;
    // A client waiting for 100-continue that was never sent has no body to drain.
    if (!this.requestDone && this.checked?.expectContinue) this.closeAfter = true;
    if (!this.requestDone) this.closeIfUndrainable();
    this.client.push(serializeAnswer(a, this.closeAfter));
    this.status = a.status;
    this.responseStarted = true;
    this.responseFinished = true;
    this.draining = true;
    this.held = [];
    this.client.hold(HOLD_BODY, false);
    this.client.hold(HOLD_UPSTREAM, false);
    this.maybeFinish();
  }

  /** The answer comes before the whole upload: only a small known rest is read and dropped. */
  private closeIfUndrainable(): void {
    const c = this.checked;
    // A request without a body has no rest; one the policy refused is not read on.
    const rest = !c ? Infinity : !c.hasBody ? 0 : !c.chunked && c.contentLength !== undefined ? c.contentLength - this.bodyBytes : Infinity;
    if (rest > DRAIN_LIMIT) this.closeAfter = true;
  }

  private maybeFinish(): void {
    if (!this.responseFinished || this.phase === 'done') return;
    if (!this.requestDone && !this.requestBroken && !this.closeAfter) return; // drain the rest of the body first
    this.phase = 'done';
    this.seen?.finish(this.status);
    this.client.exchangeDone(this.closeAfter || this.requestBroken || !this.requestDone);
  }
}
