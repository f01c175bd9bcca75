/**
 * The admin HTTP server: health and readiness probes, the JSON API, the
 * Prometheus metrics and the live status page, on node:http alone.
 *
 * Reads are open to whoever reaches the address (loopback by default).
 * Mutating calls (POST) need the `admin.token` as a bearer token when one is
 * set; without one they are refused on a non-loopback bind, and on a
 * loopback bind they are refused from browsers of other sites (an `Origin`
 * that is not this server's) and for Host names that are not loopback (DNS
 * rebinding), since nothing else protects them there.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type OutgoingHttpHeaders, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { formatAddress, parseAddress } from '../config/address.js';
import { isLoopback } from '../config/admin.js';
import type { AdminConfig } from '../config/schema.js';
import type { Drover } from '../drover.js';
import { DroverError, ListenError } from '../errors.js';
import type { Logger } from '../log.js';
import { backendDoc, healthDoc, listenersDoc, readyDoc, serviceDoc, servicesDoc, type ErrorDoc } from './api.js';
import { STATUS_PAGE, STATUS_PAGE_CSP } from './page.js';

/** Request bodies are ignored; one larger than this (bytes) is refused with 413. */
export const MAX_ADMIN_BODY = 1024;

/** A body up to this size (bytes) is read and discarded before the 413; a larger one closes the connection. */
const DISCARD_LIMIT = 64 * 1024;

/** How long a connection refused for its body keeps being read (and discarded) after the answer. */
const LINGER_MS = 1_000;

/** How long close() lets requests in progress finish before it cuts their connections. */
const CLOSE_GRACE_MS = 2_000;

/** A handler's answer: a JSON document or a text body, with its status and extra headers. */
type Answer = { readonly status: number; readonly headers?: OutgoingHttpHeaders } & (
  | { readonly json: unknown }
  | { readonly text: string; readonly type: string }
);

type Params = Readonly<Record<string, string>>;
type Handler = (params: Params) => Answer | Promise<Answer>;

/** One path: its segments (`:name` captures one), a handler for reads (GET, HEAD) or for a mutating POST. */
interface Route {
  readonly path: readonly string[];
  readonly get?: Handler;
  readonly post?: Handler;
}

/** `{"error": code, "message"}` with `status`. */
function failure(status: number, error: string, message: string, headers?: OutgoingHttpHeaders): Answer {
  const json: ErrorDoc = { error, message };
  return { status, json, ...(headers ? { headers } : {}) };
}

/**
 * The admin server of one Drover. start() binds `admin.listen` (rejecting
 * with ListenError, code DROVER_LISTEN_FAILED), configure() takes a new
 * token for the same address, close() stops it.
 */
export class AdminServer {
  private server: Server | undefined;
  private drover: Drover | undefined;
  private config: AdminConfig | undefined;
  private readonly sockets = new Set<Socket>();
  /** Sockets with a request in progress: close() lets them finish. */
  private readonly busy = new Set<Socket>();
  private closing: Promise<void> | undefined;
  private readonly routes: readonly Route[] = [
    { path: [], get: () => ({ status: 200, text: STATUS_PAGE, type: 'text/html; charset=utf-8', headers: PAGE_HEADERS }) },
    { path: ['healthz'], get: () => ({ status: 200, json: healthDoc() }) },
    { path: ['readyz'], get: () => this.readyz() },
    { path: ['metrics'], get: () => this.metrics() },
    { path: ['api', 'services'], get: () => ({ status: 200, json: servicesDoc(this.target) }) },
    { path: ['api', 'services', ':service'], get: (p) => this.service(p.service!) },
    { path: ['api', 'listeners'], get: () => ({ status: 200, json: listenersDoc(this.target) }) },
    { path: ['api', 'services', ':service', 'backends', ':id', 'drain'], post: (p) => this.drain(p.service!, p.id!, true) },
    { path: ['api', 'services', ':service', 'backends', ':id', 'undrain'], post: (p) => this.drain(p.service!, p.id!, false) },
    { path: ['api', 'reload'], post: () => this.reload() },
  ];

  constructor(private readonly log: Logger) {}

  /** The bound address as `host:port` (the real port when bound to port 0). */
  get address(): string {
    const a = this.server?.address() as AddressInfo | null | undefined;
    return a ? formatAddress(a.address, a.port) : (this.config?.listen.id ?? '');
  }

  /** The bound port. */
  get port(): number {
    return (this.server?.address() as AddressInfo | null | undefined)?.port ?? 0;
  }

  /** The config it serves with (its `listen` never changes; the token may). */
  get settings(): AdminConfig | undefined {
    return this.config;
  }

  /** Binds `config.listen` and serves `drover`; rejects with ListenError when the address cannot be bound. */
  async start(drover: Drover, config: AdminConfig): Promise<void> {
    if (this.server) throw new Error('the admin server is already started');
    this.drover = drover;
    this.config = config;
    const server = createServer(
      { requestTimeout: 30_000, headersTimeout: 10_000, keepAliveTimeout: 5_000, connectionsCheckingInterval: 1_000, maxHeaderSize: 16 * 1024 },
      (req, res) => this.handle(req, res),
    );
    server.maxConnections = 256;
    server.maxHeadersCount = 100;
    server.on('connection', (s: Socket) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
    server.on('clientError', (err: NodeJS.ErrnoException, socket) => clientError(err, socket));
    const { host, port, id } = config.listen;
    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error) => reject(new ListenError('admin', id, err));
      server.once('error', onError);
      server.listen({ host, port }, () => {
        server.off('error', onError);
        server.on('error', (err) => this.log.error('admin server error', { error: err }));
        resolve();
      });
    });
    this.server = server;
  }

  /** Takes a reloaded `admin:` block for the same address: a new or removed token applies to the next call. */
  configure(config: AdminConfig): void {
    this.config = config;
  }

  /**
   * Stops accepting at once (the address is free when this returns), closes
   * idle connections, lets requests in progress finish for up to 2 s, and
   * resolves once every connection is closed. Safe to call twice.
   */
  close(): Promise<void> {
    const server = this.server;
    if (!server) return Promise.resolve();
    if (!this.closing) {
      let cut: NodeJS.Timeout | undefined;
      this.closing = new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of this.sockets) if (!this.busy.has(s)) s.destroy();
        cut = setTimeout(() => {
          for (const s of this.sockets) s.destroy();
        }, CLOSE_GRACE_MS);
      }).then(() => clearTimeout(cut));
    }
    return this.closing;
  }

  private get target(): Drover {
    return this.drover!;
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const socket = req.socket;
    this.busy.add(socket);
    res.on('close', () => {
      this.busy.delete(socket);
      // A request that was in progress when close() came: its connection goes with it.
      if (this.closing) socket.end();
    });
    req.on('error', () => {});
    // A body that is too large is read to its end and refused (the client can
    // then read the answer); one too large even for that is refused at once
    // and the connection closed.
    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared > DISCARD_LIMIT) return this.tooLarge(req, res, true);
    let size = 0;
    let refused = false;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > DISCARD_LIMIT && !refused) {
        refused = true;
        this.tooLarge(req, res, true);
      }
    });
    req.on('end', () => {
      if (refused) return;
      if (size > MAX_ADMIN_BODY) return this.tooLarge(req, res, false);
      this.route(req).then(
        (answer) => this.send(req, res, answer),
        (err: unknown) => {
          this.log.error('admin request failed', { method: req.method, path: req.url, error: err });
          this.send(req, res, failure(500, 'DROVER_INTERNAL', 'the admin server failed to answer; see the log'));
        },
      );
    });
  }

  /**
   * 413. With `close` (the body is still arriving), the connection is
   * half-closed once the answer is out and cut a moment later: closing it
   * with the client's bytes unread would reset it, and a reset can destroy
   * the answer before the client reads it.
   */
  private tooLarge(req: IncomingMessage, res: ServerResponse, close: boolean): void {
    if (close) {
      const socket = req.socket;
      res.once('finish', () => {
        socket.end();
        const cut = setTimeout(() => socket.destroy(), LINGER_MS);
        socket.once('close', () => clearTimeout(cut));
      });
    }
    this.send(req, res, failure(413, 'DROVER_BODY_TOO_LARGE', `request bodies are ignored and may not exceed ${MAX_ADMIN_BODY} bytes`));
  }

  private async route(req: IncomingMessage): Promise<Answer> {
    const segments = pathSegments(req.url ?? '');
    if (typeof segments === 'string') return failure(400, 'DROVER_BAD_REQUEST', segments);
    for (const route of this.routes) {
      const params = match(route.path, segments);
      if (!params) continue;
      const method = req.method ?? 'GET';
      if ((method === 'GET' || method === 'HEAD') && route.get) return route.get(params);
      if (method === 'POST' && route.post) {
        const refused = this.authorize(req);
        return refused ?? route.post(params);
      }
      const allow = route.get ? 'GET, HEAD' : 'POST';
      return failure(405, 'DROVER_METHOD_NOT_ALLOWED', `${method} is not allowed here; use ${allow}`, { allow });
    }
    return failure(404, 'DROVER_NOT_FOUND', `no such path: ${(req.url ?? '').slice(0, 200)}`);
  }

  /** Undefined when a mutating call may go ahead; otherwise the 401 or 403 answer. */
  private authorize(req: IncomingMessage): Answer | undefined {
    const config = this.config!;
    if (config.token !== undefined) {
      const given = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(req.headers.authorization ?? '')?.[1];
      if (given === undefined) {
        return failure(401, 'DROVER_UNAUTHORIZED', 'this call needs the admin token: Authorization: Bearer TOKEN', {
          'www-authenticate': 'Bearer realm="drover"',
        });
      }
      if (!sameSecret(given, config.token)) {
        return failure(401, 'DROVER_UNAUTHORIZED', 'wrong admin token', { 'www-authenticate': 'Bearer realm="drover", error="invalid_token"' });
      }
      return undefined;
    }
    if (!isLoopback(config.listen.host)) {
      return failure(403, 'DROVER_FORBIDDEN', `mutating calls on a non-loopback admin address (${config.listen.id}) need admin.token`);
    }
    // Without a token only the loopback bind protects these calls: refuse
    // what a web page elsewhere could make a local browser send.
    const host = req.headers.host;
    const origin = req.headers.origin;
    if (origin !== undefined && origin !== `http://${host}`) {
      return failure(403, 'DROVER_FORBIDDEN', `cross-origin call refused (Origin: ${origin.slice(0, 200)})`);
    }
    if (host !== undefined && !isLoopback(hostName(host))) {
      return failure(403, 'DROVER_FORBIDDEN', `Host ${host.slice(0, 200)} is not a loopback address: without admin.token, mutating calls must name one`);
    }
    return undefined;
  }

  private readyz(): Answer {
    const doc = readyDoc(this.target);
    return { status: doc.ready ? 200 : 503, json: doc };
  }

  private async metrics(): Promise<Answer> {
    const metrics = this.target.metrics;
    if (!metrics) return failure(404, 'DROVER_NOT_FOUND', 'no metrics');
    return { status: 200, text: await metrics.text(), type: metrics.contentType };
  }

  private service(name: string): Answer {
    const balancer = this.target.services.get(name);
    if (!balancer) return failure(404, 'DROVER_NOT_FOUND', `no service ${JSON.stringify(name)}`);
    return { status: 200, json: serviceDoc(balancer, this.target.config.services.get(name)) };
  }

  private drain(name: string, id: string, draining: boolean): Answer {
    const balancer = this.target.services.get(name);
    if (!balancer) return failure(404, 'DROVER_NOT_FOUND', `no service ${JSON.stringify(name)}`);
    const parsed = parseAddress(id);
    const canonical = typeof parsed === 'string' ? id : parsed.id;
    const backend = balancer.backends.find((b) => b.id === canonical);
    if (!backend) return failure(404, 'DROVER_NOT_FOUND', `service ${name} has no backend ${JSON.stringify(id)}`);
    balancer.states.setDraining(backend.id, draining);
    this.log.info(draining ? 'backend drained through the admin API' : 'backend undrained through the admin API', { service: name, backend: backend.id });
    return { status: 200, json: { service: name, backend: backendDoc(balancer, backend) } };
  }

  private async reload(): Promise<Answer> {
    const result = await this.target.reloadFile();
    if (result.ok) return { status: 200, json: { ok: true } };
    const code = result.error instanceof DroverError ? result.error.code : 'DROVER_RELOAD_FAILED';
    const status = code === 'DROVER_CONFIG_INVALID' || code === 'DROVER_CONFIG_UNREADABLE' ? 400 : 409;
    return { status, json: { ok: false, error: code, message: result.error.message, problems: result.problems ?? [] } };
  }

  private send(req: IncomingMessage, res: ServerResponse, answer: Answer): void {
    if (res.headersSent || res.destroyed) return;
    const body = 'json' in answer ? JSON.stringify(answer.json, null, 2) + '\n' : answer.text;
    const headers: OutgoingHttpHeaders = {
      'content-type': 'json' in answer ? 'application/json; charset=utf-8' : answer.type,
      'content-length': Buffer.byteLength(body),
      'cache-control': 'no-store',
      'x-content-type-options': 'nosniff',
      ...answer.headers,
    };
    if (this.closing) headers.connection = 'close';
    res.writeHead(answer.status, headers);
    res.end(req.method === 'HEAD' ? undefined : body);
    this.log.debug('admin request', { method: req.method, path: req.url, status: answer.status });
  }
}

/** Security headers of the status page (on top of no-store and nosniff). */
const PAGE_HEADERS: OutgoingHttpHeaders = {
  'content-security-policy': STATUS_PAGE_CSP,
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
};

/** Answers what Node's parser refused (bad syntax, headers too large, timeouts) with a JSON error, then closes. */
function clientError(err: NodeJS.ErrnoException, socket: Duplex): void {
  if (err.code === 'ECONNRESET' || !socket.writable) {
    socket.destroy();
    return;
  }
  const [status, reason] =
    err.code === 'HPE_HEADER_OVERFLOW' ? [431, 'Request Header Fields Too Large'] : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? [408, 'Request Timeout'] : [400, 'Bad Request'];
  const body = JSON.stringify({ error: status === 431 ? 'DROVER_HEADERS_TOO_LARGE' : status === 408 ? 'DROVER_TIMEOUT' : 'DROVER_BAD_REQUEST', message: reason }) + '\n';
  socket.end(
    `HTTP/1.1 ${status} ${reason}\r\ncontent-type: application/json; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\ncache-control: no-store\r\nconnection: close\r\n\r\n${body}`,
  );
}

/**
 * The decoded segments of an origin-form request target (no query), or a
 * message saying why it is not one. `/` is no segments; one trailing slash
 * is ignored; dot segments are not resolved (they match no route).
 */
function pathSegments(url: string): string[] | string {
  // Absolute-form (`GET http://host/path`), which servers must accept: its path.
  const absolute = /^[a-z][a-z0-9+.-]*:\/\/[^/?#]*/i.exec(url);
  const target = absolute ? url.slice(absolute[0].length) || '/' : url;
  if (!target.startsWith('/')) return 'the request target must be a path';
  const path = target.replace(/[?#].*$/s, '');
  const raw = path.split('/').slice(1);
  if (raw.length > 1 && raw[raw.length - 1] === '') raw.pop();
  if (raw.length === 1 && raw[0] === '') return [];
  try {
    return raw.map((s) => decodeURIComponent(s));
  } catch {
    return 'bad percent-encoding in the path';
  }
}

/** The captures of `pattern` in `segments`, or undefined when they do not match. */
function match(pattern: readonly string[], segments: readonly string[]): Params | undefined {
  if (pattern.length !== segments.length) return undefined;
  const params: Record<string, string> = {};
  for (let i = 0; i < pattern.length; i++) {
    const p = pattern[i]!;
    const s = segments[i]!;
    if (p.startsWith(':')) {
      if (s === '') return undefined;
      params[p.slice(1)] = s;
    } else if (p !== s) return undefined;
  }
  return params;
}

/** Compares two secrets in time that does not depend on where they differ (or on the given one's length). */
function sameSecret(given: string, expected: string): boolean {
  const digest = (s: string) => createHash('sha256').update(s).digest();
  return timingSafeEqual(digest(given), digest(expected));
}

/** The host name of a Host header value (`name:port`, `[v6]:port`), without brackets. */
function hostName(host: string): string {
  const m = /^\[([^\]]*)\](?::\d*)?$/.exec(host);
  if (m) return m[1]!;
  return host.replace(/:\d*$/, '').toLowerCase();
}
