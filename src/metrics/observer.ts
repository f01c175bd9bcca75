import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { Body } from '../proxy/body.js';
import type { AccessLog } from './access-log.js';
import { upstreamReason, type ListenerSeries, type Metrics, type TrafficSeries, type UpstreamReason } from './metrics.js';

/**
 * What one listener reports to the metrics and the access log. Drover gives
 * a listener one only when there are metrics (`admin:`) or an access log,
 * and updates it in place on reload; without one, listeners skip every call
 * (`this.observer?.x()`), so a proxy without either pays nothing.
 */
export class ListenerObserver {
  private series: ListenerSeries | undefined;

  constructor(
    private name: string,
    private metrics: Metrics | undefined,
    /** The access log, if any; read when a request or connection ends, so a reload's new target gets the lines of work in flight. */
    public accessLog: AccessLog | undefined,
  ) {
    this.series = metrics?.listener(name);
  }

  /** Takes the listener's (possibly renamed) name and the current metrics and access log (start, reload). */
  update(name: string, metrics: Metrics | undefined, accessLog: AccessLog | undefined): void {
    this.name = name;
    this.metrics = metrics;
    this.accessLog = accessLog;
    this.series = metrics?.listener(name);
  }

  /** A connection or request refused because `service` had no usable backend. */
  noBackend(service: string): void {
    if (this.metrics) this.metrics.service(service).noBackend++;
  }

  /** A further backend is tried after a failed attempt. */
  retry(service: string): void {
    if (this.metrics) this.metrics.service(service).retries++;
  }

  /** An attempt on `backend` failed: `why` is the reason, or the error to classify. */
  upstreamError(service: string, backend: string, why: UpstreamReason | Error): void {
    this.metrics?.upstreamError(service, backend, typeof why === 'string' ? why : upstreamReason(why));
  }

  /** A connection or request starts on `backend`; pass the result to release() when it ends. */
  acquire(service: string, backend: string): TrafficSeries | undefined {
    const s = this.series?.series(service, backend);
    if (s) s.active++;
    return s;
  }

  /** Ends what acquire() started. */
  release(series: TrafficSeries | undefined): void {
    if (series) series.active--;
  }

  /** What acquire() started became an established connection (TCP, a WebSocket tunnel). */
  opened(series: TrafficSeries | undefined): void {
    if (series) series.connections++;
  }

  /**
   * An HTTP request starts. With an access log, its `x-request-id` is kept,
   * or one is generated, before the headers are forwarded. Counted and
   * logged when the response closes.
   */
  request(req: IncomingMessage, res: ServerResponse): RequestObservation {
    let id: string | undefined;
    if (this.accessLog) {
      const given = req.headers['x-request-id'];
      // Kept when it is a plausible id; a long or odd one would bloat every log line.
      if (typeof given === 'string' && /^[\x21-\x7e]{1,200}$/.test(given)) id = given;
      else req.headers['x-request-id'] = id = randomUUID();
    }
    return new RequestObservation(this, req, res, id);
  }

  /** A TCP connection was accepted for `service`; counted and logged when it closes. */
  connection(client: Socket, service: string): ConnectionObservation {
    return new ConnectionObservation(this, client, service);
  }

  /** Counts and logs one finished request. */
  finishRequest(o: RequestObservation, req: IncomingMessage, res: ServerResponse): void {
    const status = res.headersSent ? res.statusCode : 499;
    const ms = performance.now() - o.started;
    if (this.series) {
      const s = this.series.series(o.service, o.backend);
      s.responses[Math.min(5, Math.max(1, Math.floor(status / 100)))]!++;
      if (o.answered) {
        s.bytesIn += o.bytesIn;
        s.bytesOut += o.bytesOut;
      }
      this.series.duration(o.service, ms / 1000);
    }
    if (this.accessLog) {
      this.accessLog.write({
        time: new Date().toISOString(),
        listener: this.name,
        client: o.client ?? req.socket.remoteAddress ?? null,
        method: req.method ?? null,
        path: req.url ?? null,
        status,
        service: o.service || null,
        backend: o.backend || null,
        durationMs: Math.round(ms * 1000) / 1000,
        bytesIn: o.bytesIn,
        bytesOut: o.bytesOut,
        requestId: o.requestId ?? null,
      });
    }
  }

  /** Counts and logs one closed TCP connection. */
  finishConnection(o: ConnectionObservation, client: Socket): void {
    const ms = performance.now() - o.started;
    if (this.series && o.backend) {
      const s = this.series.series(o.service, o.backend);
      s.bytesIn += client.bytesRead;
      s.bytesOut += client.bytesWritten;
    }
    this.accessLog?.write({
      time: new Date().toISOString(),
      listener: this.name,
      client: o.client ?? null,
      service: o.service,
      backend: o.backend || null,
      durationMs: Math.round(ms * 1000) / 1000,
      bytesIn: client.bytesRead,
      bytesOut: client.bytesWritten,
    });
  }
}

/** One HTTP request as the metrics and access log see it; the listener fills in what it learns. */
export class RequestObservation {
  /** The routed service; empty while none. */
  service = '';
  /** The backend that answered, or was tried last; empty while none. */
  backend = '';
  /** The client address the balancer used (X-Forwarded-For from a trusted proxy), once known. */
  client: string | undefined;
  /** Whether a backend's response was passed on. */
  answered = false;
  /** Request body bytes read from the client. */
  bytesIn = 0;
  /** Response body bytes from the backend that answered. */
  bytesOut = 0;
  readonly started = performance.now();

  constructor(
    private readonly observer: ListenerObserver,
    req: IncomingMessage,
    res: ServerResponse,
    /** The x-request-id kept or generated (with an access log). */
    readonly requestId: string | undefined,
  ) {
    res.once('close', () => observer.finishRequest(this, req, res));
  }

  /** The request body as read before forwarding; a partial one is counted as the rest streams by. */
  body(req: IncomingMessage, body: Body): void {
    if (body.kind === 'complete') this.bytesIn = body.data.length;
    else if (body.kind === 'partial') {
      this.bytesIn = body.prefix.length;
      req.on('data', (c: Buffer) => (this.bytesIn += c.length));
    }
  }

  /** The backend's response (status `status`) is passed on: its body bytes are counted, and a 5xx is an upstream error. */
  answer(proxyRes: IncomingMessage, status: number): void {
    this.answered = true;
    if (status >= 500) this.observer.upstreamError(this.service, this.backend, '5xx');
    proxyRes.on('data', (c: Buffer) => (this.bytesOut += c.length));
  }
}

/** One TCP connection as the metrics and access log see it. */
export class ConnectionObservation {
  /** The backend it was connected to; empty while none. */
  backend = '';
  readonly client: string | undefined;
  readonly started = performance.now();

  constructor(
    private readonly observer: ListenerObserver,
    client: Socket,
    readonly service: string,
  ) {
    this.client = client.remoteAddress;
    client.once('close', () => observer.finishConnection(this, client));
  }

  /** Connected to `backend`, whose acquire() gave `series`. */
  connected(backend: string, series: TrafficSeries | undefined): void {
    this.backend = backend;
    this.observer.opened(series);
  }
}
