/**
 * Strategy quality: one Drover process with one HTTP listener per strategy, all over the same
 * three pool backends (bench/children/backend.ts `pool`: limited slots and a FIFO queue, so an
 * overloaded backend gets slower as a real one does, and ORCA load headers for agent-load).
 * The same closed-loop load (a fixed number of connections, each sending its next request when
 * the last is answered: as many as the three backends have slots together) is offered to each
 * strategy in turn, in interleaved rounds. Closed loop, because autocannon's rate limit sends
 * each second's requests in one burst, which would measure the bursts; a strategy that sends
 * too much to a slow backend shows as lower throughput and a longer tail.
 *
 * - `slow`: three backends, one 5x slower than the others (same slots, so a fifth of the capacity).
 * - `flapping`: three equal backends, one of which stops listening (resetting its connections)
 *   every flap period and comes back after the same time.
 *
 * Per strategy: achieved rate, p50/p99/p99.9, errors, and each backend's share of the answered
 * requests (counted by the backends), with the load each backend reported (agent-load follows it).
 */
import { runLoad, type LoadResult } from '../lib/load.js';
import { forkChild, sleep, type Child } from '../lib/procs.js';
import { spread, sum, type Spread } from '../lib/stats.js';
import { startDrover } from '../lib/targets.js';

/** The strategies compared. ip-hash is left out: every request comes from 127.0.0.1, so it would pin one backend. */
export const STRATEGIES = ['round-robin', 'least-connections', 'response-time', 'agent-load'] as const;

/** One pool backend's shape (see bench/children/backend.ts). */
export interface PoolSpec {
  serviceMs: number;
  slots: number;
  flapMs?: number;
}

/** Durations and load of the strategy scenarios. */
export interface StrategyPlan {
  rounds: number;
  warmupS: number;
  /** Measurement window of the slow-backend case. */
  slowS: number;
  /** Measurement window of the flapping case (covers at least one down and one up phase). */
  flapS: number;
  /** How long the flapping backend stays up, then down. */
  flapMs: number;
  /** Pause after the warm-up, so queues empty. */
  pauseMs: number;
  /** Concurrent connections (closed loop). */
  connections: number;
  fastMs: number;
  slots: number;
}

/** One counted measurement of one strategy. */
export interface StrategyMeasurement extends LoadResult {
  round: number;
  strategy: string;
  /** Each backend's share of the requests it answered during the window. */
  shares: number[];
  /** The mean utilization each backend sent in its answers' ORCA header during the window. */
  loads: number[];
}

/** A summary row: one strategy in one case. */
export interface StrategyRow {
  strategy: string;
  rps: Spread;
  p50: Spread;
  p99: Spread;
  p999: Spread;
  errors: number;
  shares: Spread[];
  loads: Spread[];
}

/** One case (slow or flapping). */
export interface StrategyCase {
  id: 'slow' | 'flapping';
  description: string;
  backends: PoolSpec[];
  rows: StrategyRow[];
  measurements: StrategyMeasurement[];
}

/** Everything the strategy scenario produced. */
export interface StrategyResult {
  plan: StrategyPlan;
  cases: StrategyCase[];
}

function yaml(ports: number[]): string {
  const services = STRATEGIES.map(
    (s) => `  ${s}:
    static: [${ports.map((p) => `127.0.0.1:${p}`).join(', ')}]
    strategy: ${s}
    retries: 2
`,
  ).join('');
  const listeners = STRATEGIES.map(
    (s) => `  - name: ${s}
    mode: http
    bind: 127.0.0.1:0
    service: ${s}
`,
  ).join('');
  return `drainTimeout: 1s\nlogLevel: error\nservices:\n${services}listeners:\n${listeners}`;
}

interface Counts {
  counts: number[];
  reportedSum: number[];
  reportedCount: number[];
}

async function counts(pool: Child): Promise<Counts> {
  return (await pool.ask({ type: 'counts' })) as unknown as Counts;
}

async function runCase(
  id: StrategyCase['id'],
  description: string,
  specs: PoolSpec[],
  windowS: number,
  plan: StrategyPlan,
  progress: (line: string) => void,
): Promise<StrategyCase> {
  const pool = forkChild(`pool-${id}`, 'children/backend.js', ['pool', JSON.stringify(specs)]);
  const { ports } = (await pool.next('listening')) as { ports: number[] };
  const drover = await startDrover(`drover-strategies-${id}`, yaml(ports));
  const measurements: StrategyMeasurement[] = [];
  try {
    for (let round = 1; round <= plan.rounds; round++) {
      const order = STRATEGIES.map((_, i) => STRATEGIES[(i + round - 1) % STRATEGIES.length]!);
      for (const strategy of order) {
        const spec = { url: `http://127.0.0.1:${drover.ports.get(strategy)}/`, connections: plan.connections };
        await runLoad({ ...spec, durationS: plan.warmupS });
        await sleep(plan.pauseMs);
        const before = await counts(pool);
        const r = await runLoad({ ...spec, durationS: windowS }, { drover: [drover.child.pid], backends: [pool.pid] });
        const after = await counts(pool);
        const answered = after.counts.map((c, i) => c - before.counts[i]!);
        const total = sum(answered);
        const shares = answered.map((a) => (total ? a / total : NaN));
        // The mean of the utilization values the backend sent during the window (none while down).
        const loads = specs.map((_, i) => {
          const n = after.reportedCount[i]! - before.reportedCount[i]!;
          return n > 0 ? (after.reportedSum[i]! - before.reportedSum[i]!) / n : NaN;
        });
        measurements.push({ ...r, round, strategy, shares, loads });
        progress(
          `${id} round ${round}/${plan.rounds} ${strategy.padEnd(18)} p50 ${r.p50.toFixed(1)} ms  p99 ${r.p99.toFixed(1)} ms  errors ${r.errors}  shares ${shares.map((s) => `${Math.round(s * 100)}%`).join('/')}`,
        );
      }
    }
  } finally {
    await drover.stop();
    await pool.stop();
  }
  const rows = STRATEGIES.map((strategy) => {
    const ms = measurements.filter((m) => m.strategy === strategy);
    return {
      strategy,
      rps: spread(ms.map((m) => m.rps)),
      p50: spread(ms.map((m) => m.p50)),
      p99: spread(ms.map((m) => m.p99)),
      p999: spread(ms.map((m) => m.p999)),
      errors: sum(ms.map((m) => m.errors)),
      shares: specs.map((_, i) => spread(ms.map((m) => m.shares[i]!))),
      loads: specs.map((_, i) => spread(ms.map((m) => m.loads[i]!))),
    };
  });
  return { id, description, backends: specs, rows, measurements };
}

/** Runs both cases. */
export async function strategies(plan: StrategyPlan, progress: (line: string) => void): Promise<StrategyResult> {
  const fast: PoolSpec = { serviceMs: plan.fastMs, slots: plan.slots };
  const slow: PoolSpec = { serviceMs: plan.fastMs * 5, slots: plan.slots };
  const cases: StrategyCase[] = [];
  cases.push(
    await runCase(
      'slow',
      `three backends of ${plan.slots} slots: two answer in ${plan.fastMs} ms, one in ${plan.fastMs * 5} ms (5x slower); ${plan.connections} connections, closed loop`,
      [fast, fast, slow],
      plan.slowS,
      plan,
      progress,
    ),
  );
  cases.push(
    await runCase(
      'flapping',
      `three equal backends (${plan.fastMs} ms, ${plan.slots} slots); the third stops listening and resets its connections for ${plan.flapMs / 1000} s every ${(2 * plan.flapMs) / 1000} s (flaps every ${plan.flapMs / 1000} s); ${plan.connections} connections, closed loop`,
      [fast, fast, { ...fast, flapMs: plan.flapMs }],
      plan.flapS,
      plan,
      progress,
    ),
  );
  return { plan, cases };
}
