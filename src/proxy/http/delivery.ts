import { performance } from 'node:perf_hooks';
import type { Backend } from '../../../strategies/index.js';
import { idlePercent, parseOrca } from '../../health/orca.js';
import type { Logger } from '../../log.js';
import type { UpstreamReason } from '../../metrics/metrics.js';
import type { ListenerObserver } from '../../metrics/observer.js';
import type { TrafficSeries } from '../../metrics/metrics.js';
import type { ServiceEntry } from '../listener.js';
import type { FailureReason, Refusal } from './request.js';

/**
 * The delivery rules of HTTP mode, the same for every engine: which failed
 * attempt may go to the next backend, and what the client gets otherwise.
 */

/** Request bodies up to this size are held in memory so an idempotent request can be retried. */
export const RETRY_BODY_LIMIT = 64 * 1024;

/** How one attempt on one backend ended without a response to pass on. */
export type AttemptFailure =
  /** Refused, reset before connecting, or no connection within `timeouts.connect`: nothing was sent. */
  | 'connect'
  /** Reset or closed before any response byte: the backend may have seen the request. */
  | 'closed'
  /** No response headers within `timeouts.response` of the request being sent. */
  | 'timeout'
  /** The backend's answer cannot be parsed or passed on (bad status line, framing, a 101 nobody asked for). */
  | 'invalid';

/** What to do after a failed attempt: try the next candidate, or answer. */
export type NextStep = { readonly retry: true } | { readonly retry: false; readonly answer: Refusal };

/**
 * The delivery table (README, "Failures, retries and delivery"):
 * - nothing was sent (`connect`): the next candidate, whatever the method;
 * - closed before any response byte: the next candidate only when the
 *   request is `replayable` (idempotent method, whole body held, <= 64 KB),
 *   else 502: at most once for a POST;
 * - no response headers in time: 504, never retried (the backend is slow,
 *   and a retry would double the load that made it slow);
 * - an answer that cannot be passed on: 502, not retried (it saw the request).
 */
export function afterFailure(failure: AttemptFailure, replayable: boolean, backend: string, responseTimeout: number): NextStep {
  switch (failure) {
    case 'connect':
      return { retry: true };
    case 'closed':
      return replayable ? { retry: true } : { retry: false, answer: upstreamFailed(`backend ${backend} failed after it may have received the request`) };
    case 'timeout':
      return {
        retry: false,
        answer: { status: 504, code: 'DROVER_UPSTREAM_TIMEOUT', message: `backend ${backend} sent no response headers within ${responseTimeout}ms`, reason: 'upstream_timeout' },
      };
    case 'invalid':
      return { retry: false, answer: invalidResponse(backend, 'its answer could not be passed on') };
  }
}

/** The answer once every candidate failed before reaching a backend. */
export function allFailed(service: string, tried: number): Refusal {
  return upstreamFailed(`service ${service}: ${tried} backend(s) failed`);
}

/** 502 for a backend answer that cannot be passed on; `why` says what was wrong with it. */
export function invalidResponse(backend: string, why: string): Refusal {
  return { status: 502, code: 'DROVER_UPSTREAM_FAILED', message: `backend ${backend} sent an invalid response: ${why}`, reason: 'invalid_response' };
}

function upstreamFailed(message: string): Refusal {
  return { status: 502, code: 'DROVER_UPSTREAM_FAILED', message, reason: 'upstream_failed' };
}

/** 503: the service has no usable backend (every member down, drained or at weight 0). */
export function noBackend(service: string): Refusal {
  return { status: 503, code: 'DROVER_NO_BACKEND', message: `service ${service}: no usable backend`, reason: 'no_backend' };
}

/** 503: every usable backend is at its limit and the service's queue is full. */
export function queueFull(service: string, size: number): Refusal {
  return { status: 503, code: 'DROVER_QUEUE_FULL', message: `service ${service}: every backend is at its limit and ${size} request(s) already wait`, reason: 'queue_full' };
}

/** 503: the request waited `timeout` ms for a backend slot and got none. */
export function queueTimeout(service: string, timeout: number): Refusal {
  return { status: 503, code: 'DROVER_QUEUE_TIMEOUT', message: `service ${service}: no backend slot freed within ${timeout}ms`, reason: 'queue_timeout' };
}

/** Whether a request may be sent again after a backend may have received it. */
export function replayable(entry: ServiceEntry, method: string, bodyHeld: boolean): boolean {
  return bodyHeld && entry.config.idempotentMethods.includes(method);
}

/**
 * The accounting of one attempt on one backend, for both engines: the
 * backend's active count and metrics series from start to end(), the
 * latency sample and passive-health outcome when the response headers come
 * (or the failure), the backend's ORCA load report, and a wake-up for
 * requests queued on the service when the slot frees.
 */
export class Attempt {
  readonly started = performance.now();
  private readonly series: TrafficSeries | undefined;
  private ended = false;

  constructor(
    readonly entry: ServiceEntry,
    readonly backend: Backend,
    private readonly observer: ListenerObserver | undefined,
    /** Ends the attempt if the backend's drain deadline passes. */
    private readonly close: () => void,
  ) {
    entry.balancer.states.acquire(backend.id, close);
    this.series = observer?.acquire(entry.balancer.name, backend.id);
  }

  /** Response headers with `status` arrived; `orca` is the backend's load report header, if any. */
  answered(status: number, orca: string | undefined, log: Logger): void {
    const states = this.entry.balancer.states;
    states.sample(this.backend.id, performance.now() - this.started);
    states.outcome(this.backend.id, status >= 200 && status < 500);
    if (orca === undefined) return;
    const load = parseOrca(orca);
    if (load instanceof Error) log.debug('ignored load report', { backend: this.backend.id, error: load });
    else states.setReport(this.backend.id, { percent: idlePercent(load) });
  }

  /**
   * The attempt failed before a response could be passed on. It counts as
   * the slowest answer (at least `floorMs`), so response-time backs off.
   */
  failed(failure: AttemptFailure, reason: UpstreamReason | Error, floorMs: number): void {
    const states = this.entry.balancer.states;
    states.sample(this.backend.id, Math.max(performance.now() - this.started, floorMs));
    states.outcome(this.backend.id, false);
    this.observer?.upstreamError(this.entry.balancer.name, this.backend.id, failure === 'timeout' ? 'timeout' : failure === 'invalid' ? 'invalid_response' : reason);
  }

  /** The upgrade became a tunnel: counted as a connection. */
  tunnelled(): void {
    this.observer?.opened(this.series);
  }

  /** Releases the slot (once); queued requests of the service try again. */
  end(): void {
    if (this.ended) return;
    this.ended = true;
    this.entry.balancer.states.release(this.backend.id, this.close);
    this.observer?.release(this.series);
    this.entry.balancer.queue.wake();
  }
}

/** How often one (service, reason) pair may log: once, then at most once per window with a count of the rest. */
export const FAILURE_LOG_WINDOW_MS = 10_000;

/**
 * Every 502, 503 and 504 leaves a trace: a warning with listener, service,
 * backend, reason and request id, rate-limited per service and reason (the
 * first at once, then one per 10 s carrying `suppressed`, the count of those
 * not logged since), so a failing backend cannot flood the log.
 */
export class FailureLog {
  private readonly last = new Map<string, { at: number; suppressed: number }>();

  constructor(
    private readonly log: Logger,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** Logs (or counts) one failure answer; answers without a `reason` (refusals of bad requests) are not failures. */
  report(listener: string, answer: Refusal, service: string, backend: string, requestId: string | undefined): void {
    const reason: FailureReason | undefined = answer.reason;
    if (!reason) return;
    const key = `${service}\u0000${reason}`;
    const now = this.now();
    const last = this.last.get(key);
    if (last && now - last.at < FAILURE_LOG_WINDOW_MS) {
      last.suppressed++;
      return;
    }
    this.last.set(key, { at: now, suppressed: 0 });
    this.log.warn(`request failed: ${answer.status}`, {
      listener,
      service: service || null,
      backend: backend || null,
      reason,
      code: answer.code,
      status: answer.status,
      requestId: requestId ?? null,
      message: answer.message,
      ...(last?.suppressed ? { suppressed: last.suppressed } : {}),
    });
  }
}
