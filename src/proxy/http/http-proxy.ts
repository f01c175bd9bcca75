import { Agent, createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import httpProxy from 'http-proxy';
import type { Backend } from '../../strategies/index.js';
import { formatAddress } from '../config/address.js';
import type { HttpListenerConfig } from '../config/schema.js';
import { idlePercent, ORCA_HEADER, parseOrca } from '../health/orca.js';
import type { Logger } from '../log.js';
import type { TrafficSeries } from '../metrics/metrics.js';
import type { ListenerObserver, RequestObservation } from '../metrics/observer.js';
import { readBody, type Body } from './body.js';
import { forwardedHeaders, responseHeaders, TrustedProxies } from './headers.js';
import { listenOn, type Listener, type ServiceEntry } from './listener.js';
import { matchRoute } from './routes.js';

/** A service as the HTTP listener needs it. */
/** Request bodies up to this size are held in memory so an idempotent request can be retried. */
export const RETRY_BODY_LIMIT = 64 * 1024;

type Outcome = 'done' | 'retry' | 'bad-gateway' | 'timeout' | 'client-gone';

/** Per-attempt hooks the shared http-proxy events are routed to. */
interface Attempt {
  onProxyReq(proxyReq: import('node:http').ClientRequest): void;
  onResponse(proxyRes: IncomingMessage): void;
}

/**
 * A layer-7 listener: routes each request to a service, picks a backend per
 * request, and forwards it with http-proxy over one keep-alive agent per
 * backend. Retries follow explicit delivery rules:
 *
 * - a request that never reached a backend (refused, connect timeout) moves
 *   to the next candidate, whatever its method: the body is only fed once
 *   the upstream socket is connected, so nothing was consumed;
 * - a request that may have reached one is retried only when its method is
 *   idempotent, no response byte arrived and its body (<= 64 KB) is held in
 *   memory; otherwise the client gets 502 (at most once for POST);
 * - response headers later than `timeouts.response` give 504 and abort the
 *   upstream request. No usable backend gives 503.
 */
export class HttpListener implements Listener {
  private readonly server: Server;
  private readonly proxy = httpProxy.createProxyServer({ xfwd: false, selfHandleResponse: true });
  private readonly agents = new Map<string, Agent>();
  private readonly sockets = new Set<Socket>();
  private readonly attempts = new WeakMap<IncomingMessage, Attempt>();
  /** Upgrades waiting for the backend's handshake answer: cleared when it comes. */
  private readonly handshakes = new WeakMap<Socket, NodeJS.Timeout>();
  /** Client sockets whose upgrade the backend accepted (101 sent on). */
  private readonly upgraded = new WeakSet<Socket>();
  /** Metrics series of upgrades in progress, counted as connections once the tunnel is up. */
  private readonly tunnels = new WeakMap<Socket, TrafficSeries>();
  private trust: TrustedProxies;
  private draining: Promise<void> | undefined;
  /** Metrics and access log; set by Drover only when it has either. */
  observer: ListenerObserver | undefined;

  constructor(
    public config: HttpListenerConfig,
    private readonly services: ReadonlyMap<string, ServiceEntry>,
    private readonly log: Logger,
  ) {
    this.server = createServer({ noDelay: true, requestTimeout: 0, headersTimeout: config.timeouts.headers, connectionsCheckingInterval: Math.min(1000, config.timeouts.headers) });
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
      rawResponse(socket, 405, 'DROVER_METHOD_NOT_ALLOWED', 'CONNECT is not proxied');
    });
    this.server.on('drop', () => this.log.warn('connection refused: maxConnections reached', { listener: config.name }));
    this.proxy.on('proxyReq', (proxyReq, req) => this.attempts.get(req)?.onProxyReq(proxyReq));
    this.proxy.on('proxyRes', (proxyRes, req) => this.attempts.get(req)?.onResponse(proxyRes));
    this.proxy.on('proxyReqWs', (proxyReq, _req, socket) => {
      // A client that leaves (or times out) before the handshake completes
      // takes the upstream request with it: upgrades bypass the agent pool.
      const abandon = () => {
        if (!this.upgraded.has(socket as Socket)) proxyReq.destroy();
      };
      (socket as Socket).once('close', abandon);
      queueMicrotask(() => {
        // Replace http-proxy's answer to a refused upgrade: it copies the raw
        // headers (Transfer-Encoding included) over a body it has de-chunked.
        proxyReq.removeAllListeners('response');
        proxyReq.on('response', (res: IncomingMessage) => {
          clearTimeout(this.handshakes.get(socket as Socket));
          const headers = Object.entries(responseHeaders(res.headers))
            .flatMap(([k, v]) => (Array.isArray(v) ? v.map((x) => `${k}: ${x}`) : [`${k}: ${String(v)}`]))
            .join('\r\n');
          const reason = res.statusMessage && VALID_REASON.test(res.statusMessage) ? res.statusMessage : '';
          (socket as Socket).write(`HTTP/1.1 ${res.statusCode} ${reason}\r\n${headers}${headers ? '\r\n' : ''}connection: close\r\n\r\n`);
          res.pipe(socket as Socket);
        });
      });
      proxyReq.on('upgrade', (_res, upstream: Socket) => {
        clearTimeout(this.handshakes.get(socket as Socket));
        this.upgraded.add(socket as Socket);
        this.observer?.opened(this.tunnels.get(socket as Socket));
        // Either side closing takes the other with it.
        upstream.on('close', () => socket.destroy());
        (socket as Socket).on('close', () => upstream.destroy());
        // http-proxy's own upgrade handler runs after this one and clears both
        // sockets' timeouts, so the idle timeout goes in afterwards.
        queueMicrotask(() => {
          const idle = () => upstream.destroy();
          upstream.setTimeout(this.config.timeouts.idle, idle);
          (socket as Socket).setTimeout(this.config.timeouts.idle, idle);
        });
      });
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
    this.server.keepAliveTimeout = timeouts.idle;
    // Inactivity on a client socket at any point (a body that stops arriving,
    // a client that stops reading) closes it; without this, requestTimeout: 0
    // would let a stalled upload hold a connection forever.
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
    const seen = this.observer?.request(req, res);
    if (this.draining) res.setHeader('connection', 'close');
    res.on('finish', () => this.draining && this.server.closeIdleConnections());
    // Node's parser takes a request line without a version for HTTP/0.9; a
    // proxy must not upgrade that to HTTP/1.1 on the way to the backend.
    if (req.httpVersionMajor !== 1) return local(req, res, 400, 'DROVER_BAD_REQUEST', `HTTP/${req.httpVersion} is not supported`);
    if (!originForm(req)) return local(req, res, 400, 'DROVER_BAD_REQUEST', 'invalid request target');
    // RFC 9112 6.1: chunked not last means the body length is unknowable (400);
    // other codings before it are ones Drover does not decode (501).
    const te = req.headers['transfer-encoding'];
    if (te !== undefined) {
      const codings = te.split(',').map((c) => c.trim().toLowerCase());
      if (codings[codings.length - 1] !== 'chunked') return local(req, res, 400, 'DROVER_BAD_REQUEST', `invalid Transfer-Encoding "${te}"`);
      if (codings.length > 1) return local(req, res, 501, 'DROVER_NOT_IMPLEMENTED', `transfer coding "${te}" is not supported`);
    }
    const route = matchRoute(this.config.routes, req);
    if (!route) return local(req, res, 404, 'DROVER_NO_ROUTE', `no route for ${req.method} ${req.headers.host ?? ''}${req.url}`);
    const service = this.services.get(route.service)!;
    const peer = req.socket.remoteAddress;
    const clientAddress = this.trust.clientAddress(peer, req.headers['x-forwarded-for']);
    if (seen) {
      seen.service = route.service;
      seen.client = clientAddress;
    }
    const headers = forwardedHeaders(req.headers, peer, this.trust.has(peer));
    const body = await readBody(req, RETRY_BODY_LIMIT);
    if (body.kind === 'gone') return;
    seen?.body(req, body);
    // The upstream framing comes from what Node's parser read, never from
    // forwarded headers: it is set again on each upstream request (see
    // onProxyReq), after http-proxy has had its say, so nothing can leave a
    // body without a length or with a wrong one (request smuggling).
    const framing: Framing =
      body.kind === 'complete'
        ? body.data.length > 0 || req.headers['content-length'] !== undefined || req.headers['transfer-encoding'] !== undefined
          ? { 'content-length': String(body.data.length) }
          : {}
        : req.headers['content-length'] !== undefined
          ? { 'content-length': req.headers['content-length'] }
          : { 'transfer-encoding': 'chunked' };
    delete headers['content-length'];
    delete headers['transfer-encoding'];
    req.headers = headers as IncomingMessage['headers'];

    const candidates = service.balancer.candidates(clientAddress);
    if (candidates.length === 0) {
      this.observer?.noBackend(route.service);
      return local(req, res, 503, 'DROVER_NO_BACKEND', `service ${route.service}: no usable backend`);
    }
    const replayable = body.kind === 'complete' && service.config.idempotentMethods.includes(req.method ?? '');
    for (const [i, backend] of candidates.entries()) {
      if (i > 0) this.observer?.retry(route.service);
      const outcome = await this.attempt(req, res, backend, service, body, framing, replayable, seen);
      if (outcome === 'done' || outcome === 'client-gone') return;
      if (outcome === 'timeout') {
        return local(req, res, 504, 'DROVER_UPSTREAM_TIMEOUT', `backend ${backend.id} sent no response headers within ${this.config.timeouts.response}ms`);
      }
      if (outcome === 'bad-gateway') {
        return local(req, res, 502, 'DROVER_UPSTREAM_FAILED', `backend ${backend.id} failed after it may have received the request`);
      }
      this.log.debug('retrying on the next backend', { listener: this.config.name, backend: backend.id, method: req.method });
    }
    local(req, res, 502, 'DROVER_UPSTREAM_FAILED', `service ${route.service}: ${candidates.length} backend(s) failed`);
  }

  /** One try against one backend; resolves with what happened. */
  private attempt(
    req: IncomingMessage,
    res: ServerResponse,
    backend: Backend,
    service: ServiceEntry,
    body: Exclude<Body, { kind: 'gone' }>,
    framing: Framing,
    replayable: boolean,
    seen: RequestObservation | undefined,
  ): Promise<Outcome> {
    const states = service.balancer.states;
    const name = service.balancer.name;
    if (seen) seen.backend = backend.id;
    const started = performance.now();
    const connectTimeout = this.config.timeouts.connect ?? service.config.timeouts.connect;
    return new Promise<Outcome>((resolve) => {
      let proxyReq: import('node:http').ClientRequest | undefined;
      // A drain deadline on this backend ends the request.
      const close = () => {
        proxyReq?.destroy();
        res.destroy();
      };
      states.acquire(backend.id, close);
      const series = this.observer?.acquire(name, backend.id);
      let connected = false;
      let responded = false;
      let timedOut = false;
      let settled = false;
      let released = false;
      let connectTimer: NodeJS.Timeout | undefined;
      const release = () => {
        if (!released) {
          states.release(backend.id, close);
          this.observer?.release(series);
        }
        released = true;
      };
      const settle = (outcome: Outcome) => {
        if (settled) return;
        settled = true;
        clearTimeout(responseTimer);
        clearTimeout(connectTimer);
        res.off('close', onClientClose);
        if (outcome !== 'done') {
          proxyReq?.destroy();
          release();
        }
        resolve(outcome);
      };
      const onClientClose = () => {
        if (!res.writableFinished) settle('client-gone');
      };
      res.on('close', onClientClose);
      // The response timeout covers waiting for a socket and connecting, then
      // pauses while the body is sent (the client's idle timeout governs a
      // slow upload), and counts again once the request is fully sent.
      const onResponseTimeout = () => {
        timedOut = true;
        states.sample(backend.id, this.config.timeouts.response);
        states.outcome(backend.id, false);
        this.observer?.upstreamError(name, backend.id, 'timeout');
        settle('timeout');
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
      this.attempts.set(req, {
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
          states.sample(backend.id, performance.now() - started);
          const status = proxyRes.statusCode ?? 0;
          states.outcome(backend.id, status >= 200 && status < 500);
          const orca = proxyRes.headers[ORCA_HEADER];
          if (typeof orca === 'string') {
            const load = parseOrca(orca);
            if (load instanceof Error) this.log.debug('ignored load report', { backend: backend.id, error: load });
            else states.setReport(backend.id, { percent: idlePercent(load) });
          }
          try {
            if (status < 200 || status > 999) throw new Error(`invalid status ${status}`);
            if (this.draining) res.shouldKeepAlive = false;
            const reason = proxyRes.statusMessage && VALID_REASON.test(proxyRes.statusMessage) ? proxyRes.statusMessage : undefined;
            res.writeHead(status, reason, responseHeaders(proxyRes.headers));
          } catch (err) {
            // A backend's malformed status line or header must not crash the
            // proxy: it is a bad gateway, and not retried (it saw the request).
            this.log.warn('invalid response from backend', { listener: this.config.name, backend: backend.id, error: err });
            this.observer?.upstreamError(name, backend.id, 'invalid_response');
            proxyRes.destroy();
            if (!res.headersSent) for (const name of res.getHeaderNames()) res.removeHeader(name);
            settle('bad-gateway');
            return;
          }
          responded = true;
          proxyRes.on('error', () => res.destroy());
          proxyRes.on('aborted', () => res.destroy());
          res.on('close', () => {
            release();
            if (!res.writableFinished) proxyRes.destroy();
          });
          seen?.answer(proxyRes, status);
          proxyRes.pipe(res);
          settle('done');
        },
      });
      this.proxy.web(req, res, { target: { host: backend.host, port: backend.port }, agent: this.agent(backend, service), buffer: idle() }, (err) => {
        if (settled) {
          if (responded) res.destroy();
          return;
        }
        this.log.debug('backend request failed', { listener: this.config.name, backend: backend.id, error: err });
        this.observer?.upstreamError(name, backend.id, err);
        // A failure counts as the slowest answer, so response-time backs off from it.
        states.sample(backend.id, Math.max(performance.now() - started, connectTimeout));
        if (!timedOut && !responded) states.outcome(backend.id, false);
        if (timedOut) settle('timeout');
        else if (!connected || (!responded && replayable)) settle('retry');
        else settle('bad-gateway');
      });
    });
  }

  private upgrade(req: IncomingMessage, socket: Socket, head: Buffer): void {
    socket.on('error', () => socket.destroy());
    if (this.draining) return rawResponse(socket, 503, 'DROVER_NO_BACKEND', 'shutting down');
    // http-proxy passes WebSocket upgrades only (GET + Upgrade: websocket).
    if (req.method !== 'GET' || String(req.headers.upgrade).toLowerCase() !== 'websocket') {
      return rawResponse(socket, 501, 'DROVER_NOT_IMPLEMENTED', `only WebSocket upgrades are proxied, not "${req.headers.upgrade}"`);
    }
    if (!originForm(req)) return rawResponse(socket, 400, 'DROVER_BAD_REQUEST', 'invalid request target');
    const route = matchRoute(this.config.routes, req);
    if (!route) return rawResponse(socket, 404, 'DROVER_NO_ROUTE', 'no route');
    const service = this.services.get(route.service)!;
    const peer = req.socket.remoteAddress;
    const [backend] = service.balancer.candidates(this.trust.clientAddress(peer, req.headers['x-forwarded-for']));
    if (!backend) {
      this.observer?.noBackend(route.service);
      return rawResponse(socket, 503, 'DROVER_NO_BACKEND', `service ${route.service}: no usable backend`);
    }
    req.headers = forwardedHeaders(req.headers, peer, this.trust.has(peer), true) as IncomingMessage['headers'];
    const states = service.balancer.states;
    const close = () => socket.destroy();
    states.acquire(backend.id, close);
    const series = this.observer?.acquire(route.service, backend.id);
    if (series) this.tunnels.set(socket, series);
    socket.once('close', () => {
      states.release(backend.id, close);
      this.observer?.release(series);
    });
    const handshake = setTimeout(() => socket.destroy(), this.config.timeouts.response);
    this.handshakes.set(socket, handshake);
    socket.once('close', () => clearTimeout(handshake));
    try {
      this.proxy.ws(req, socket, head, { target: { host: backend.host, port: backend.port } }, (err) => {
        this.log.debug('upgrade failed', { listener: this.config.name, backend: backend.id, error: err });
        if (!this.upgraded.has(socket)) this.observer?.upstreamError(route.service, backend.id, err);
        if (!this.upgraded.has(socket) && socket.writable) rawResponse(socket, 502, 'DROVER_UPSTREAM_FAILED', `backend ${backend.id} failed`);
      });
    } catch (err) {
      this.log.warn('upgrade refused', { listener: this.config.name, error: err });
      rawResponse(socket, 400, 'DROVER_BAD_REQUEST', 'invalid upgrade request');
    }
  }

  private agent(backend: Backend, service: ServiceEntry): Agent {
    let agent = this.agents.get(backend.id);
    if (agent) {
      // A reload may have changed these: Agent reads both per request and per idle socket.
      agent.maxSockets = service.config.maxSockets;
      (agent as Agent & { options: { timeout?: number } }).options.timeout = service.config.timeouts.keepAlive;
    } else {
      agent = new Agent({
        keepAlive: true,
        maxSockets: service.config.maxSockets,
        timeout: service.config.timeouts.keepAlive,
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

/** An empty stream for http-proxy's `buffer` option: Drover feeds the body itself once connected. */
function idle(): import('node:stream').Readable & { pipe: <T>(dest: T) => T } {
  return { pipe: <T>(dest: T) => dest } as unknown as import('node:stream').Readable & { pipe: <T>(dest: T) => T };
}

/**
 * Brings the request target to origin form (`/path?query`), the form routes
 * match and backends receive. An absolute-form target (`http://host/path`,
 * which servers must accept) moves its authority into Host. Anything else
 * (`*` outside OPTIONS, unparsable URLs) is refused: false.
 */
function originForm(req: IncomingMessage): boolean {
  const target = req.url ?? '';
  if (target.startsWith('/')) return true;
  if (target === '*' && req.method === 'OPTIONS') return true;
  let url: URL;
  try {
    url = new URL(target);
  } catch {
    return false;
  }
  if ((url.protocol !== 'http:' && url.protocol !== 'https:') || !url.host || url.username || url.password) return false;
  req.headers.host = url.host;
  req.url = `${url.pathname}${url.search}`;
  return true;
}

/** A response Drover makes itself: a small JSON body with a stable code. */
function local(req: IncomingMessage, res: ServerResponse, status: number, code: string, message: string): void {
  if (res.headersSent || res.destroyed) return void res.destroy();
  const body = JSON.stringify({ error: code, message });
  if (res.getHeader('connection') === 'close') res.shouldKeepAlive = false;
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(body),
    ...(status === 503 ? { 'retry-after': '1' } : {}),
    // An unread request body would otherwise be read and thrown away, and
    // after a 400 the rest of the stream cannot be trusted.
    ...(!req.complete || status === 400 ? { connection: 'close' } : {}),
  });
  res.end(body);
}

const STATUS_TEXT: Record<number, string> = {
  400: 'Bad Request',
  404: 'Not Found',
  405: 'Method Not Allowed',
  408: 'Request Timeout',
  431: 'Request Header Fields Too Large',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
};

/** Writes a whole HTTP/1.1 response on a raw socket and closes it. */
function rawResponse(socket: Socket, status: number, code: string, message: string): void {
  const body = JSON.stringify({ error: code, message });
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_TEXT[status] ?? ''}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n` +
      `${status === 503 ? 'retry-after: 1\r\n' : ''}connection: close\r\n\r\n${body}`,
  );
}

/**
 * Answers what Node's HTTP parser refused: 431 for oversized headers, 408 for
 * headers that took longer than `timeouts.headers` (slowloris), 400 for
 * everything else (malformed request lines, Content-Length with
 * Transfer-Encoding, duplicate Content-Length, obs-fold). Nothing refused
 * here is ever forwarded.
 */
function clientError(err: NodeJS.ErrnoException, socket: Socket): void {
  if (err.code === 'ECONNRESET' || !socket.writable) return void socket.destroy();
  // A response already under way (Drover refused the request itself, then
  // the parser choked on its body): let it finish, write nothing more.
  const current = (socket as Socket & { _httpMessage?: { headersSent?: boolean } })._httpMessage;
  if (current?.headersSent) return void socket.destroySoon();
  if (err.code === 'HPE_HEADER_OVERFLOW') rawResponse(socket, 431, 'DROVER_HEADERS_TOO_LARGE', 'request headers too large');
  else if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') rawResponse(socket, 408, 'DROVER_REQUEST_TIMEOUT', 'request headers took too long');
  else rawResponse(socket, 400, 'DROVER_BAD_REQUEST', `malformed request: ${err.code ?? err.message}`);
  socket.destroySoon();
}
