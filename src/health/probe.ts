import { request, type ClientRequest } from 'node:http';
import { connect, type Socket } from 'node:net';

/** What one probe found: ok, or why not. */
export interface ProbeResult {
  readonly ok: boolean;
  readonly reason?: string;
}

/** Where a probe goes: a member's address and its id (`host:port`, the default Host header). */
export interface ProbeTarget {
  readonly id: string;
  readonly host: string;
  readonly port: number;
}

/** What an HTTP probe sends and accepts. */
export interface HttpProbeOptions {
  readonly path: string;
  /** The Host header; default the target's id. */
  readonly host?: string;
  /** Inclusive status ranges that count as a pass. */
  readonly expect: ReadonlyArray<readonly [number, number]>;
}

/** The User-Agent of HTTP checks, so backends can tell them from clients in their logs. */
export const USER_AGENT = 'drover-health-check';

/** A short reason from an error: its code (ECONNREFUSED, ...) or its message. */
function reasonOf(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && code) return code;
  return err instanceof Error ? err.message : String(err);
}

/** Whether `status` is inside one of the inclusive ranges. */
export function statusExpected(status: number, expect: ReadonlyArray<readonly [number, number]>): boolean {
  return expect.some(([lo, hi]) => status >= lo && status <= hi);
}

/**
 * Runs `start` with a settle-once callback, a deadline and an abort signal.
 * `start` returns what to destroy when the probe ends for any reason, so no
 * socket outlives its probe. Never rejects.
 */
function bounded(
  timeout: number,
  signal: AbortSignal | undefined,
  start: (settle: (r: ProbeResult) => void) => { destroy(): void },
): Promise<ProbeResult> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve({ ok: false, reason: 'aborted' });
    let done = false;
    let handle: { destroy(): void } | undefined;
    const settle = (r: ProbeResult) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      try {
        handle?.destroy();
      } catch {
        // Destroying a socket that is already gone must not matter.
      }
      resolve(r);
    };
    const onAbort = () => settle({ ok: false, reason: 'aborted' });
    const timer = setTimeout(() => settle({ ok: false, reason: 'timeout' }), timeout);
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      handle = start(settle);
    } catch (err) {
      settle({ ok: false, reason: reasonOf(err) });
    }
    // A probe that settled while starting (synchronous error) still closes what it opened.
    if (done) handle?.destroy();
  });
}

/** TCP check: a connection accepted within `timeout` passes; it is closed at once. */
export function tcpProbe(target: ProbeTarget, timeout: number, signal?: AbortSignal): Promise<ProbeResult> {
  return bounded(timeout, signal, (settle) => {
    const socket: Socket = connect({ host: target.host, port: target.port });
    socket.on('error', (err) => settle({ ok: false, reason: reasonOf(err) }));
    socket.once('connect', () => settle({ ok: true }));
    socket.once('close', () => settle({ ok: false, reason: 'closed' }));
    return socket;
  });
}

/**
 * HTTP check: `GET path` on a fresh connection (no pooling, `Connection:
 * close`); it passes when the status is in `expect`. Connecting and the
 * response headers must both come within `timeout`; the body is not read,
 * the connection is closed as soon as the status is known.
 */
export function httpProbe(target: ProbeTarget, options: HttpProbeOptions, timeout: number, signal?: AbortSignal): Promise<ProbeResult> {
  return bounded(timeout, signal, (settle) => {
    const req: ClientRequest = request({
      host: target.host,
      port: target.port,
      method: 'GET',
      path: options.path,
      agent: false,
      headers: { Host: options.host ?? target.id, Connection: 'close', 'User-Agent': USER_AGENT },
    });
    req.on('error', (err) => settle({ ok: false, reason: reasonOf(err) }));
    req.once('close', () => settle({ ok: false, reason: 'closed' }));
    req.once('response', (res) => {
      // The body is of no interest: drop it and whatever error closing it early brings.
      res.on('error', () => {});
      res.resume();
      const status = res.statusCode ?? 0;
      settle(statusExpected(status, options.expect) ? { ok: true } : { ok: false, reason: `status ${status}` });
    });
    req.end();
    return req;
  });
}
