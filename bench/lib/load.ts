/**
 * One measurement: autocannon's programmatic API against one URL, with the CPU time of the
 * bench process itself (the load generator) and of the processes under test read over exactly
 * the same window.
 *
 * Latency: autocannon's own histogram counts whole milliseconds, too coarse for a proxy on
 * loopback, so every response is also timed here (from autocannon's `response` events) and the
 * percentiles are exact. In a closed loop (no rate limit) each connection sends its next
 * request as soon as an answer arrives, so an answer's latency is taken as the time since the
 * previous answer on the same connection (or since the start): the full cycle the client sees,
 * reconnects included. autocannon's own per-request time is wrong for servers that close the
 * connection after each answer (it pairs answers with stale send times: 957 ms measured where
 * the cycle is 51 ms, against node-http-proxy without keep-alive), so it is used only for
 * rate-limited runs, where connections pause between requests. With autocannon's worker threads
 * the events stay in the workers; then autocannon's millisecond percentiles are used.
 */
import autocannon from 'autocannon';
import { performance } from 'node:perf_hooks';
import { cpuSeconds } from './procs.js';

/** What to send, to where, how hard and for how long. */
export interface LoadSpec {
  url: string;
  /** Concurrent connections (closed loop: each waits for its answer before the next request). */
  connections: number;
  durationS: number;
  method?: 'GET' | 'POST';
  body?: Buffer;
  /** Requests per second over all connections (open-ish loop); absent: as fast as answered. */
  overallRate?: number;
  /** autocannon worker threads (0: run in the bench process's main thread). */
  workers?: number;
  /** Per-request timeout in seconds (autocannon's default is 10). */
  timeoutS?: number;
}

/** The figures of one measurement. Latencies in ms; CPU as a fraction of one core. */
export interface LoadResult {
  requests: number;
  durationS: number;
  rps: number;
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  max: number;
  /** Connection errors and timeouts, plus non-2xx answers. */
  errors: number;
  non2xx: number;
  timeouts: number;
  /** Response bytes per second. */
  bytesPerS: number;
  /** CPU of the bench process (the load generator) over the measurement. */
  loadgenCpu: number;
  /** CPU of each watched group of processes over the measurement. */
  cpu: Record<string, number>;
  /** Whether the percentiles are exact (own recording) or autocannon's whole milliseconds. */
  exactLatency: boolean;
}

/** A growable array of doubles. */
class Samples {
  private data = new Float64Array(1 << 16);
  length = 0;
  push(v: number): void {
    if (this.length === this.data.length) {
      const next = new Float64Array(this.data.length * 2);
      next.set(this.data);
      this.data = next;
    }
    this.data[this.length++] = v;
  }
  sorted(): Float64Array {
    return this.data.slice(0, this.length).sort();
  }
}

/** The q-quantile (0..1) of sorted values, nearest rank. */
export function quantile(sorted: ArrayLike<number>, q: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[i]!;
}

/**
 * Runs one autocannon measurement. `watch` maps a group name to the pids whose CPU time is
 * read before and after (a proxy, a backend). `onResponse` sees every response (main-thread
 * runs only).
 */
export function runLoad(
  spec: LoadSpec,
  watch: Record<string, readonly number[]> = {},
  onResponse?: (statusCode: number, responseTime: number) => void,
): Promise<LoadResult> {
  const workers = spec.workers ?? 0;
  const samples = new Samples();
  return new Promise((resolve, reject) => {
    const cpu0 = process.cpuUsage();
    const watch0 = Object.fromEntries(Object.entries(watch).map(([k, pids]) => [k, cpuSeconds(pids)]));
    const t0 = performance.now();
    const opts: autocannon.Options = {
      url: spec.url,
      connections: spec.connections,
      duration: spec.durationS,
      method: spec.method ?? 'GET',
      timeout: spec.timeoutS ?? 10,
      // autocannon checks for the end of the run once per sample interval (default 1 s): a
      // finer interval makes short measurements last what they should.
      sampleInt: 100,
      ...(spec.body ? { body: spec.body, headers: { 'content-type': 'application/octet-stream' } } : {}),
      ...(spec.overallRate ? { overallRate: spec.overallRate } : {}),
      ...(workers > 0 ? { workers } : {}),
    };
    const instance = autocannon(opts, (err: Error | null, result: autocannon.Result) => {
      if (err) return reject(err);
      const wall = (performance.now() - t0) / 1000;
      const used = process.cpuUsage(cpu0);
      const cpu: Record<string, number> = {};
      for (const [k, pids] of Object.entries(watch)) cpu[k] = (cpuSeconds(pids) - watch0[k]!) / wall;
      const exact = samples.length > 0 && workers === 0;
      const sorted = exact ? samples.sorted() : undefined;
      const pick = (q: number, fallback: number) => (sorted ? quantile(sorted, q) : fallback);
      const durationS = result.duration || spec.durationS;
      const requests = result.requests.total;
      resolve({
        requests,
        durationS,
        rps: requests / durationS,
        p50: pick(0.5, result.latency.p50),
        p90: pick(0.9, result.latency.p90),
        p99: pick(0.99, result.latency.p99),
        p999: pick(0.999, result.latency.p99_9),
        max: sorted ? sorted[sorted.length - 1] ?? NaN : result.latency.max,
        errors: result.errors + result.non2xx,
        non2xx: result.non2xx,
        timeouts: result.timeouts,
        bytesPerS: result.throughput.total / durationS,
        loadgenCpu: (used.user + used.system) / 1e6 / wall,
        cpu,
        exactLatency: exact,
      });
    });
    if (workers === 0) {
      const closedLoop = !spec.overallRate;
      const last = new Map<unknown, number>();
      const start = performance.now();
      instance.on('response', (client, statusCode: number, _bytes: number, responseTime: number) => {
        let latency = responseTime;
        if (closedLoop) {
          const now = performance.now();
          latency = now - (last.get(client) ?? start);
          last.set(client, now);
        }
        samples.push(latency);
        onResponse?.(statusCode, latency);
      });
    }
  });
}
