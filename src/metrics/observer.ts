import { randomUUID } from 'node:crypto';
import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { headerValue } from '../proxy/http/request.js';
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
   * An HTTP request starts. With an access log, the client's `x-request-id`
   * is kept when it is a plausible id, or one is generated (and sent
   * upstream: see `generatedId`). Counted and logged at finish().
   */
  request(method: string, path: string, peer: string | undefined, headers: readonly string[]): RequestObservation {
    let id: string | undefined;
    let generated = false;
    if (this.accessLog) {
      const given = headerValue(headers, 'x-request-id');
      // Kept when it is a plausible id; a long or odd one would bloat every log line.
      if (given !== undefined && /^[\x21-\x7e]{1,200}$/.test(given)) id = given;
      else {
        id = randomUUID();
        generated = true;
      }
    }
    return new RequestObservation(this, method, path, peer, id, generated);
  }

  /** A TCP connection was accepted for `service`; counted and logged when it closes. */
  connection(client: Socket, service: string): ConnectionObservation {
    return new ConnectionObservation(this, client, service);
  }

  /** Counts and logs one finished request; `status` undefined is a client gone before its answer (499). */
  finishRequest(o: RequestObservation, status: number | undefined): void {
    const code = status ?? 499;
    const ms = performance.now() - o.started;
    if (this.series) {
      const s = this.series.series(o.service, o.backend);
      s.responses[Math.min(5, Math.max(1, Math.floor(code / 100)))]!++;
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
        client: o.client ?? o.peer ?? null,
        method: o.method,
        path: o.path,
        status: code,
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

/**
 * One HTTP request as the metrics and access log see it. The engine fills in
 * what it learns (service, backend, byte counts) and calls finish() once.
 */
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
  private finished = false;

  constructor(
    private readonly observer: ListenerObserver,
    readonly method: string,
    /** The origin-form path (the target as sent when it could not be read). */
    public path: string,
    /** The socket's peer address. */
    readonly peer: string | undefined,
    /** The x-request-id kept or generated (with an access log). */
    readonly requestId: string | undefined,
    /** True when Drover made the id up: it is sent upstream in place of the client's. */
    readonly generatedId: boolean,
  ) {}

  /** The backend's response (status `status`) is passed on: a 5xx is an upstream error. */
  answer(status: number): void {
    this.answered = true;
    if (status >= 500) this.observer.upstreamError(this.service, this.backend, '5xx');
  }

  /** The request ended with `status` sent (undefined: the client left first). Counted once. */
  finish(status: number | undefined): void {
    if (this.finished) return;
    this.finished = true;
    this.observer.finishRequest(this, status);
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
