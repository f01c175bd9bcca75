import { randomUUID } from 'node:crypto';
import { Agent, createServer, type IncomingMessage, type OutgoingHttpHeaders, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import httpProxy from 'http-proxy';
import type { Backend } from '../../../strategies/index.js';
import { formatAddress } from '../../config/address.js';
import type { HttpListenerConfig } from '../../config/schema.js';
import type { Logger } from '../../log.js';
import type { ListenerObserver, RequestObservation } from '../../metrics/observer.js';
import { listenOn, type Listener, type ServiceEntry } from '../listener.js';
import { localAnswer, parseRefusal, serializeAnswer } from './answers.js';
import { readBody, type Body } from './body.js';
import { afterFailure, allFailed, Attempt, FailureLog, noBackend, queueFull, queueTimeout, replayable, RETRY_BODY_LIMIT, type AttemptFailure } from './delivery.js';
import { downstreamHeaders, TrustedProxies, unsupportedCoding, upstreamHeaders } from './headers.js';
import { checkRequest, headerValue, isRefusal, type Refusal, type RequestHead } from './request.js';
import { matchRoute } from './routes.js';

/** How one attempt ended: answered, failed (and how), or the client left. */
type Outcome = { kind: 'done' } | { kind: 'client-gone' } | { kind: 'failed'; failure: AttemptFailure };

/** Per-attempt hooks the shared http-proxy events are routed to. */
interface Hooks {
  onProxyReq(proxyReq: import('node:http').ClientRequest): void;
  onResponse(proxyRes: IncomingMessage): void;
}

/**
 * A layer-7 listener on the http-proxy engine: node:http parses and answers,
 * http-proxy forwards over one keep-alive agent per backend. The HTTP rules
 * (validation, routing, headers, delivery, queueing, local answers) are the
 * shared ones of request.ts, headers.ts, routes.ts and delivery.ts. Limits
 * of this engine, listed in the README: only WebSocket upgrades pass (others
 * get 501), trailers are dropped, pipelined requests are dispatched at once
 * by node:http, and the rest of an upload a backend did not read stays in
 * the client socket.
 */
export class HttpProxyListener implements Listener {
  readonly engine = 'http-proxy';
  private readonly server: Server;
  private readonly proxy = httpProxy.createProxyServer({ xfwd: false, selfHandleResponse: true });
  private readonly agents = new Map<string, Agent>();
  /** Requests in flight per backend id: kept at most `maxSockets`, so the agents never queue on their own. */
  private readonly busy = new Map<string, number>();
  private readonly sockets = new Set<Socket>();
  private readonly hooks = new WeakMap<IncomingMessage, Hooks>();
  /** Upgrades waiting for the backend's handshake answer: cleared when it comes. */
  private readonly handshakes = new WeakMap<Socket, NodeJS.Timeout>();
  /** Client sockets whose upgrade the backend accepted (101 sent on). */
  private readonly upgraded = new WeakSet<Socket>();
  /** Accounting of upgrades in progress, counted as connections once the tunnel is up. */
  private readonly tunnels = new WeakMap<Socket, Attempt>();
  private readonly failures: FailureLog;
  private trust: TrustedProxies;
  private draining: Promise<void> | undefined;
  /** Metrics and access log; set by Drover only when it has either. */
  observer: ListenerObserver | undefined;

  constructor(
    public config: HttpListenerConfig,
    private readonly services: ReadonlyMap<string, ServiceEntry>,
    private readonly log: Logger,
  ) {
    this.failures = new FailureLog(log);
    this.server = createServer({ noDelay: true, requestTimeout: config.timeouts.request, headersTimeout: config.timeouts.headers, connectionsCheckingInterval: Math.min(1000, config.timeouts.headers) });
    // Node keeps only the first 2000 headers by default: a Content-Length past
    // the cut would be invisible here. maxHeaderSize (16 KB) still bounds them.
    this.server.maxHeadersCount = 0;
    this.trust = this.apply(config);
    this.server.on('connection', (s: Socket) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
    this.server.on('request', (req, res) => {
      this.handle(req, res).catch((err: unknown) => {
        this.log.error('request handling failed', { listener: config.name, error: err });
        res.destroy();
      });
    });
    this.server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => this.upgrade(req, socket, head));
    this.server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => clientError(err, socket));
    this.server.on('connect', (_req: IncomingMessage, socket: Socket) => {
      socket.on('error', () => socket.destroy());
      rawResponse(socket, { status: 405, code: 'DROVER_METHOD_NOT_ALLOWED', message: 'CONNECT is not proxied' });
    });
    this.server.on('drop', () => this.log.warn('connection refused: maxConnections reached', { listener: config.name }));
    this.proxy.on('proxyReq', (proxyReq, req) => this.hooks.get(req)?.onProxyReq(proxyReq));
    this.proxy.on('proxyRes', (proxyRes, req) => this.hooks.get(req)?.onResponse(proxyRes));
    this.proxy.on('proxyReqWs', (proxyReq, req, socket) => {
      // http-proxy joins and re-parses the target (collapsing //): the backend gets what the route matched.
      proxyReq.path = req.url ?? '/';
      this.watchHandshake(proxyReq, socket as Socket);
    });
    this.proxy.on('error', (err) => this.log.debug('proxy error', { listener: config.name, error: err }));
  }

  get connections(): number {
    return this.sockets.size;
  }

  reconfigure(config: HttpListenerConfig): void {
    this.config = config;
    this.trust = this.apply(config);
  }

  /** Sets what a reload may change on the server; returns the trusted proxies. */
  private apply(config: HttpListenerConfig): TrustedProxies {
    const { timeouts } = config;
    this.server.headersTimeout = timeouts.headers;
    this.server.requestTimeout = timeouts.request;
    this.server.keepAliveTimeout = timeouts.idle;
    // Inactivity on a client socket at any point (a body that stops arriving,
    // a client that stops reading) closes it.
    this.server.timeout = timeouts.idle;
    this.server.maxConnections = config.maxConnections;
    return new TrustedProxies(config.trustForwardedFor);
  }

  get address(): string {
    const a = this.server.address() as AddressInfo | null;
    return a ? formatAddress(a.address, a.port) : this.config.bind.id;
  }

  listen(): Promise<AddressInfo> {
    return listenOn(this.server, this.config, this.log);
  }

  drain(timeoutMs: number): Promise<void> {
    this.draining ??= new Promise<void>((resolve) => {
      const timer = setTimeout(() => this.destroyAll(), timeoutMs);
      timer.unref();
      this.server.close(() => {
        clearTimeout(timer);
        for (const agent of this.agents.values()) agent.destroy();
        resolve();
      });
      this.server.closeIdleConnections();
    });
    return this.draining;
  }

  destroyAll(): void {
    for (const s of this.sockets) s.destroy();
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const head = headOf(req);
    const peer = req.socket.remoteAddress;
    const seen = this.observer?.request(head.method, head.target, peer, head.headers);
    if (seen) res.once('close', () => seen.finish(res.headersSent ? res.statusCode : undefined));
    if (this.draining) res.setHeader('connection', 'close');
    res.on('finish', () => this.draining && this.server.closeIdleConnections());
    const checked = checkRequest(head);
    if (isRefusal(checked)) return this.local(req, res, checked, seen);
    if (seen) seen.path = checked.path;
    const route = matchRoute(this.config.routes, { method: head.method, host: checked.host, path: checked.path, headers: head.headers });
    if (!route) return this.local(req, res, { status: 404, code: 'DROVER_NO_ROUTE', message: `no route for ${head.method} ${checked.host ?? ''}${checked.path}` }, seen);
    const entry = this.services.get(route.service);
    if (!entry) return this.local(req, res, noBackend(route.service), seen, route.service);
    const clientAddress = this.trust.clientAddress(peer, headerValue(head.headers, 'x-forwarded-for'));
    if (seen) {
      seen.service = route.service;
      seen.client = clientAddress;
    }
    const headers = toHeaderObject(
      upstreamHeaders(head.headers, {
        peer,
        trusted: this.trust.has(peer),
        host: checked.host,
        hostFromTarget: checked.hostFromTarget,
        requestId: seen?.generatedId ? seen.requestId : undefined,
        upgradeTo: '',
      }),
    );
    const body = await readBody(req, RETRY_BODY_LIMIT);
    if (body.kind === 'gone') return;
    if (seen) countBody(seen, req, body);
    // The upstream framing comes from what Node's parser read, never from
    // forwarded headers: it is set again on each upstream request (see
    // onProxyReq), after http-proxy has had its say, so nothing can leave a
    // body without a length or with a wrong one (request smuggling).
    const framing: Framing =
      body.kind === 'complete'
        ? body.data.length > 0 || checked.contentLength !== undefined || checked.chunked
          ? { 'content-length': String(body.data.length) }
          : {}
        : checked.contentLength !== undefined
          ? { 'content-length': String(checked.contentLength) }
          : { 'transfer-encoding': 'chunked' };
    req.headers = headers as IncomingMessage['headers'];
    req.url = checked.path;

    const mayReplay = replayable(entry, head.method, body.kind === 'complete');
    let tried = 0;
    let last = '';
    let candidates = entry.balancer.candidates(clientAddress);
    for (let i = 0; ; ) {
      const next = candidates.slice(i).findIndex((b) => this.room(entry, b));
      if (next < 0) {
        if (tried > 0) return this.local(req, res, allFailed(route.service, tried), seen, route.service, last);
        const waited = await this.wait(entry, route.service, candidates.length > 0, res);
        if (waited === 'placed') {
          candidates = entry.balancer.candidates(clientAddress);
          i = 0;
          continue;
        }
        if (waited === 'gone') return;
        if (waited.status === 503 && waited.code === 'DROVER_NO_BACKEND') this.observer?.noBackend(route.service);
        return this.local(req, res, waited, seen, route.service, last);
      }
      const backend = candidates[i + next]!;
      last = backend.id;
      i += next + 1;
      if (tried++ > 0) this.observer?.retry(route.service);
      const outcome = await this.attempt(req, res, backend, entry, body, framing, seen);
      if (outcome.kind !== 'failed') return;
      const step = afterFailure(outcome.failure, outcome.failure === 'connect' || mayReplay, backend.id, this.config.timeouts.response);
      if (!step.retry) return this.local(req, res, step.answer, seen, route.service, backend.id);
      this.log.debug('retrying on the next backend', { listener: this.config.name, backend: backend.id, method: head.method });
    }
  }

  /** Whether `backend` may take one more request under `maxSockets`. */
  private room(entry: ServiceEntry, backend: Backend): boolean {
    return (this.busy.get(backend.id) ?? 0) < entry.config.maxSockets;
  }

  /**
   * No candidate had room: wait in the service's queue when some backend is
   * only full, else it is a 503. Resolves `placed` to try again, `gone` when
   * the client left, or the refusal to answer.
   */
  private wait(entry: ServiceEntry, service: string, sawFull: boolean, res: ServerResponse): Promise<'placed' | 'gone' | Refusal> {
    const states = entry.balancer.states;
    if (!sawFull && !entry.balancer.backends.some((b) => states.full(b.id))) return Promise.resolve(noBackend(service));
    const { size, timeout } = entry.config.queue;
    return new Promise((resolve) => {
      const waiter = {
        retry: () => {
          if (!entry.balancer.backends.some((b) => states.usable(b.id) && this.room(entry, b))) return false;
          res.off('close', onClose);
          resolve('placed');
          return true;
        },
        expire: (why: 'timeout' | 'closed') => {
          res.off('close', onClose);
          resolve(why === 'timeout' ? queueTimeout(service, timeout) : noBackend(service));
        },
      };
      const onClose = () => {
        entry.balancer.queue.remove(waiter);
        resolve('gone');
      };
      if (!entry.balancer.queue.add(waiter, size, timeout)) return resolve(queueFull(service, size));
      res.once('close', onClose);
    });
  }

  /** One try against one backend; resolves with what happened. */
  private attempt(
    req: IncomingMessage,
    res: ServerResponse,
    backend: Backend,
    entry: ServiceEntry,
    body: Exclude<Body, { kind: 'gone' }>,
    framing: Framing,
    seen: RequestObservation | undefined,
  ): Promise<Outcome> {
    if (seen) seen.backend = backend.id;
    const connectTimeout = this.config.timeouts.connect ?? entry.config.timeouts.connect;
    const busy = this.busy;
    busy.set(backend.id, (busy.get(backend.id) ?? 0) + 1);
    return new Promise<Outcome>((resolve) => {
      let proxyReq: import('node:http').ClientRequest | undefined;
      // A drain deadline on this backend ends the request.
      const close = () => {
        proxyReq?.destroy();
        res.destroy();
      };
      const attempt = new Attempt(entry, backend, this.observer, close);
      let connected = false;
      let responded = false;
      let settled = false;
      let released = false;
      let connectTimer: NodeJS.Timeout | undefined;
      const release = () => {
        if (released) return;
        released = true;
        const n = (busy.get(backend.id) ?? 1) - 1;
        if (n > 0) busy.set(backend.id, n);
        else busy.delete(backend.id);
        attempt.end();
        // The agent is per backend address: requests queued on another service sharing it may take the slot.
        for (const s of this.services.values()) if (s.balancer.queue.length > 0) s.balancer.queue.wake();
      };
      const settle = (outcome: Outcome) => {
        if (settled) return;
        settled = true;
        clearTimeout(responseTimer);
        clearTimeout(connectTimer);
        res.off('close', onClientClose);
        if (outcome.kind !== 'done') {
          proxyReq?.destroy();
          release();
        }
        resolve(outcome);
      };
      const onClientClose = () => {
        if (!res.writableFinished) settle({ kind: 'client-gone' });
      };
      res.on('close', onClientClose);
      // The response timeout covers waiting for a socket and connecting, then
      // pauses while the body is sent (the client's idle timeout governs a
      // slow upload), and counts again once the request is fully sent.
      const onResponseTimeout = () => {
        attempt.failed('timeout', 'timeout', this.config.timeouts.response);
        settle({ kind: 'failed', failure: 'timeout' });
      };
      let responseTimer = setTimeout(onResponseTimeout, this.config.timeouts.response);
      const feed = (upstream: import('node:http').ClientRequest) => {
        connected = true;
        clearTimeout(responseTimer);
        upstream.once('finish', () => {
          if (!settled) responseTimer = setTimeout(onResponseTimeout, this.config.timeouts.response);
        });
        if (body.kind === 'complete') upstream.end(body.data);
        else {
          upstream.write(body.prefix);
          req.pipe(upstream);
        }
      };
      this.hooks.set(req, {
        onProxyReq: (r) => {
          proxyReq = r;
          if (settled) return void r.destroy();
          // Headers are not sent before the first write (in feed), so the
          // framing and the exact request target can still be set here:
          // http-proxy adds Content-Length: 0 to bodyless DELETE/OPTIONS and
          // rewrites the path (collapsing //), which would differ from what
          // the route matched.
          r.removeHeader('content-length');
          r.removeHeader('transfer-encoding');
          for (const [name, value] of Object.entries(framing)) r.setHeader(name, value);
          r.path = req.url ?? '/';
          const socket = r.socket!;
          if (!socket.connecting) return feed(r);
          connectTimer = setTimeout(() => r.destroy(Object.assign(new Error(`connect timeout after ${connectTimeout}ms`), { code: 'ETIMEDOUT' })), connectTimeout);
          socket.once('connect', () => {
            clearTimeout(connectTimer);
            feed(r);
          });
        },
        onResponse: (proxyRes) => {
          if (settled) return;
          const status = proxyRes.statusCode ?? 0;
          const { headers, orca } = downstreamHeaders(proxyRes.rawHeaders);
          attempt.answered(status, orca, this.log);
          try {
            if (status < 200 || status > 999) throw new Error(`invalid status ${status}`);
            const coding = unsupportedCoding(proxyRes.rawHeaders);
            if (coding !== undefined) throw new Error(`transfer coding "${coding.slice(0, 40)}" is not supported`);
            if (this.draining) res.shouldKeepAlive = false;
            const reason = proxyRes.statusMessage && VALID_REASON.test(proxyRes.statusMessage) ? proxyRes.statusMessage : undefined;
            res.writeHead(status, reason, toHeaderObject(headers));
          } catch (err) {
            // A backend's malformed status line or header must not crash the
            // proxy: it is a bad gateway, and not retried (it saw the request).
            this.log.debug('invalid response from backend', { listener: this.config.name, backend: backend.id, error: err });
            attempt.failed('invalid', 'invalid_response', 0);
            proxyRes.destroy();
            if (!res.headersSent) for (const name of res.getHeaderNames()) res.removeHeader(name);
            settle({ kind: 'failed', failure: 'invalid' });
            return;
          }
          responded = true;
          proxyRes.on('error', () => res.destroy());
          proxyRes.on('aborted', () => res.destroy());
          res.on('close', () => {
            release();
            if (!res.writableFinished) proxyRes.destroy();
          });
          if (seen) {
            seen.answer(status);
            proxyRes.on('data', (c: Buffer) => (seen.bytesOut += c.length));
          }
          proxyRes.pipe(res);
          settle({ kind: 'done' });
        },
      });
      this.proxy.web(req, res, { target: { host: backend.host, port: backend.port }, agent: this.agent(backend, entry), buffer: idle() }, (err) => {
        if (settled) {
          if (responded) res.destroy();
          return;
        }
        this.log.debug('backend request failed', { listener: this.config.name, backend: backend.id, error: err });
        const failure: AttemptFailure = (err as NodeJS.ErrnoException).code === 'HPE_INVALID_CONSTANT' || String((err as NodeJS.ErrnoException).code).startsWith('HPE_') ? 'invalid' : connected ? 'closed' : 'connect';
        // A failure counts as the slowest answer, so response-time backs off from it.
        attempt.failed(failure, err, connectTimeout);
        settle({ kind: 'failed', failure });
      });
    });
  }

  /** Drover's own answer; 502, 503 and 504 are logged (rate-limited) with a request id the client also gets. */
  private local(req: IncomingMessage, res: ServerResponse, refusal: Refusal, seen: RequestObservation | undefined, service = '', backend = ''): void {
    if (res.headersSent || res.destroyed) return void res.destroy();
    const requestId = refusal.reason ? (seen?.requestId ?? headerValue(req.rawHeaders, 'x-request-id') ?? randomUUID()) : undefined;
    if (refusal.reason) this.failures.report(this.config.name, refusal, service, backend, requestId);
    const a = localAnswer(refusal.status, refusal.code, refusal.message, requestId);
    if (res.getHeader('connection') === 'close') res.shouldKeepAlive = false;
    res.writeHead(a.status, {
      ...toHeaderObject(a.headers),
      'content-length': Buffer.byteLength(a.body),
      // An unread request body would otherwise be read and thrown away, and
      // after a 400 the rest of the stream cannot be trusted.
      ...(!req.complete || a.status === 400 ? { connection: 'close' } : {}),
    });
    res.end(a.body);
  }

  private upgrade(req: IncomingMessage, socket: Socket, head: Buffer): void {
    socket.on('error', () => socket.destroy());
    if (this.draining) return rawResponse(socket, { status: 503, code: 'DROVER_NO_BACKEND', message: 'shutting down' });
    const request = headOf(req);
    const checked = checkRequest(request);
    if (isRefusal(checked)) return rawResponse(socket, checked);
    // http-proxy passes WebSocket upgrades only (GET + Upgrade: websocket).
    if (request.method !== 'GET' || checked.upgradeTo.toLowerCase() !== 'websocket') {
      return rawResponse(socket, { status: 501, code: 'DROVER_NOT_IMPLEMENTED', message: `the http-proxy engine passes WebSocket upgrades only, not "${headerValue(request.headers, 'upgrade') ?? ''}"` });
    }
    const route = matchRoute(this.config.routes, { method: request.method, host: checked.host, path: checked.path, headers: request.headers });
    if (!route) return rawResponse(socket, { status: 404, code: 'DROVER_NO_ROUTE', message: 'no route' });
    const entry = this.services.get(route.service);
    const peer = req.socket.remoteAddress;
    const [backend] = entry?.balancer.candidates(this.trust.clientAddress(peer, headerValue(request.headers, 'x-forwarded-for'))) ?? [];
    if (!entry || !backend) {
      this.observer?.noBackend(route.service);
      return rawResponse(socket, noBackend(route.service));
    }
    req.headers = toHeaderObject(
      upstreamHeaders(request.headers, { peer, trusted: this.trust.has(peer), host: checked.host, hostFromTarget: checked.hostFromTarget, requestId: undefined, upgradeTo: checked.upgradeTo }),
    ) as IncomingMessage['headers'];
    req.url = checked.path;
    const attempt = new Attempt(entry, backend, this.observer, () => socket.destroy());
    this.tunnels.set(socket, attempt);
    socket.once('close', () => attempt.end());
    const handshake = setTimeout(() => socket.destroy(), this.config.timeouts.response);
    this.handshakes.set(socket, handshake);
    socket.once('close', () => clearTimeout(handshake));
    try {
      this.proxy.ws(req, socket, head, { target: { host: backend.host, port: backend.port } }, (err) => {
        this.log.debug('upgrade failed', { listener: this.config.name, backend: backend.id, error: err });
        if (!this.upgraded.has(socket)) attempt.failed('connect', err, 0);
        if (!this.upgraded.has(socket) && socket.writable) rawResponse(socket, { status: 502, code: 'DROVER_UPSTREAM_FAILED', message: `backend ${backend.id} failed` });
      });
    } catch (err) {
      this.log.warn('upgrade refused', { listener: this.config.name, error: err });
      rawResponse(socket, { status: 400, code: 'DROVER_BAD_REQUEST', message: 'invalid upgrade request' });
    }
  }

  /** Follows an upgrade's handshake: its answer, the tunnel, the idle timeout. */
  private watchHandshake(proxyReq: import('node:http').ClientRequest, socket: Socket): void {
    // A client that leaves (or times out) before the handshake completes
    // takes the upstream request with it: upgrades bypass the agent pool.
    socket.once('close', () => {
      if (!this.upgraded.has(socket)) proxyReq.destroy();
    });
    queueMicrotask(() => {
      // Replace http-proxy's answer to a refused upgrade: it copies the raw
      // headers (Transfer-Encoding included) over a body it has de-chunked.
      proxyReq.removeAllListeners('response');
      proxyReq.on('response', (res: IncomingMessage) => {
        clearTimeout(this.handshakes.get(socket));
        const lines = downstreamHeaders(res.rawHeaders).headers;
        let text = '';
        for (let i = 0; i < lines.length; i += 2) text += `${lines[i]}: ${lines[i + 1]}\r\n`;
        const reason = res.statusMessage && VALID_REASON.test(res.statusMessage) ? res.statusMessage : '';
        socket.write(`HTTP/1.1 ${res.statusCode} ${reason}\r\n${text}connection: close\r\n\r\n`);
        res.pipe(socket);
      });
    });
    proxyReq.on('upgrade', (_res, upstream: Socket) => {
      clearTimeout(this.handshakes.get(socket));
      this.upgraded.add(socket);
      this.tunnels.get(socket)?.tunnelled();
      // Either side closing takes the other with it.
      upstream.on('close', () => socket.destroy());
      socket.on('close', () => upstream.destroy());
      // http-proxy's own upgrade handler runs after this one and clears both
      // sockets' timeouts, so the idle timeout goes in afterwards.
      queueMicrotask(() => {
        const idle = () => upstream.destroy();
        upstream.setTimeout(this.config.timeouts.idle, idle);
        socket.setTimeout(this.config.timeouts.idle, idle);
      });
    });
  }

  private agent(backend: Backend, entry: ServiceEntry): Agent {
    let agent = this.agents.get(backend.id);
    if (agent) {
      // A reload may have changed these: Agent reads both per request and per idle socket.
      agent.maxSockets = entry.config.maxSockets;
      (agent as Agent & { options: { timeout?: number } }).options.timeout = entry.config.timeouts.keepAlive;
    } else {
      agent = new Agent({
        keepAlive: true,
        maxSockets: entry.config.maxSockets,
        timeout: entry.config.timeouts.keepAlive,
        scheduling: 'lifo',
      });
      this.agents.set(backend.id, agent);
      this.pruneAgents();
    }
    return agent;
  }

  /** Agents of backends that left every service are closed once they are idle. */
  private pruneAgents(): void {
    const live = new Set<string>();
    for (const s of this.services.values()) for (const b of s.balancer.backends) live.add(b.id);
    for (const [id, agent] of this.agents) {
      if (live.has(id)) continue;
      const busy = Object.values(agent.sockets).some((list) => list && list.length > 0);
      if (!busy) {
        agent.destroy();
        this.agents.delete(id);
      }
    }
  }
}

/** How the request body is framed upstream: one of these headers, or none for no body. */
type Framing = { 'content-length'?: string; 'transfer-encoding'?: 'chunked' };

/** A reason phrase Node will write (RFC 9112: HTAB, SP, VCHAR, obs-text). */
const VALID_REASON = /^[\t\x20-\x7e\x80-\xff]*$/;

/** The request as the shared policy reads it. */
function headOf(req: IncomingMessage): RequestHead {
  return {
    method: req.method ?? 'GET',
    target: req.url ?? '/',
    versionMajor: req.httpVersionMajor,
    versionMinor: req.httpVersionMinor,
    headers: req.rawHeaders,
    upgrade: req.headers.upgrade !== undefined && /(^|,)\s*upgrade\s*(,|$)/i.test(req.headers.connection ?? ''),
    keepAlive: true,
  };
}

/** Flat pairs as node:http's header object (duplicates as arrays). */
function toHeaderObject(flat: readonly string[]): OutgoingHttpHeaders {
  const out: Record<string, string | string[]> = {};
  for (let i = 0; i < flat.length; i += 2) {
    const name = flat[i]!.toLowerCase();
    const value = flat[i + 1]!;
    const had = out[name];
    if (had === undefined) out[name] = value;
    else if (Array.isArray(had)) had.push(value);
    else out[name] = [had, value];
  }
  return out;
}

/** Counts the request body: whole, or the prefix and then the rest as it streams by. */
function countBody(seen: RequestObservation, req: IncomingMessage, body: Body): void {
  if (body.kind === 'complete') seen.bytesIn = body.data.length;
  else if (body.kind === 'partial') {
    seen.bytesIn = body.prefix.length;
    req.on('data', (c: Buffer) => (seen.bytesIn += c.length));
  }
}

/** An empty stream for http-proxy's `buffer` option: Drover feeds the body itself once connected. */
function idle(): import('node:stream').Readable & { pipe: <T>(dest: T) => T } {
  return { pipe: <T>(dest: T) => dest } as unknown as import('node:stream').Readable & { pipe: <T>(dest: T) => T };
}

/** Writes a whole local answer on a raw socket and closes it. */
function rawResponse(socket: Socket, refusal: Refusal): void {
  socket.end(serializeAnswer(localAnswer(refusal.status, refusal.code, refusal.message), true), 'latin1');
}

/**
 * Answers what Node's HTTP parser refused: 431 for oversized headers, 408 for
 * headers that took longer than `timeouts.headers` (slowloris), 400 for
 * everything else. Nothing refused here is ever forwarded.
 */
function clientError(err: NodeJS.ErrnoException, socket: Socket): void {
  if (err.code === 'ECONNRESET' || !socket.writable) return void socket.destroy();
  // A response already under way (Drover refused the request itself, then
  // the parser choked on its body): let it finish, write nothing more.
  const current = (socket as Socket & { _httpMessage?: { headersSent?: boolean } })._httpMessage;
  if (current?.headersSent) return void socket.destroySoon();
  rawResponse(socket, parseRefusal(err.code, err.message));
  socket.destroySoon();
}
