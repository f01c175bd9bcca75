/**
 * Throughput and latency: every target against the same backend, for three payloads, in
 * interleaved rounds (each round visits every payload and every target, in an order rotated
 * per round, so slow drifts of a shared machine spread over all rows alike). Each measurement
 * is preceded by a warm-up run that is not counted.
 */
import { LARGE_BYTES, UPLOAD_BYTES } from '../lib/payloads.js';
import { runLoad, type LoadResult } from '../lib/load.js';
import { sleep } from '../lib/procs.js';
import { spread, sum, type Spread } from '../lib/stats.js';
import type { Backend, Skipped, Target } from '../lib/targets.js';

/** One kind of request. */
export interface Payload {
  id: string;
  label: string;
  path: string;
  method: 'GET' | 'POST';
  body?: Buffer;
  connections: number;
}

/** The three payloads of the issue: ~100-byte answers, 64 KB answers, 1 MB uploads. */
export const PAYLOADS: Payload[] = [
  { id: 'small', label: 'GET, 100 B answer', path: '/small', method: 'GET', connections: 50 },
  { id: '64k', label: `GET, ${LARGE_BYTES / 1024} KB answer`, path: '/64k', method: 'GET', connections: 20 },
  { id: 'post1m', label: `POST ${UPLOAD_BYTES / 1024 / 1024} MB body`, path: '/upload', method: 'POST', body: Buffer.alloc(UPLOAD_BYTES, 0x61), connections: 8 },
];

/** Durations of the throughput scenario. */
export interface ThroughputPlan {
  rounds: number;
  warmupS: number;
  measureS: number;
  /** Warm up before every measurement (full run) or only in the first round (quick). */
  warmEveryRound: boolean;
  /** Pause before each counted run (lets the previous run's connections close). */
  pauseMs: number;
  workers: number;
}

/** One counted measurement. */
export interface Measurement extends LoadResult {
  round: number;
  target: string;
  payload: string;
  /** Position in its round's order for this payload (0 = first). */
  order: number;
}

/** A row of the table: one target, one payload, summarised over the rounds. */
export interface ThroughputRow {
  target: string;
  label: string;
  mode: Target['mode'];
  payload: string;
  rps: Spread;
  p50: Spread;
  p99: Spread;
  p999: Spread;
  errors: number;
  requests: number;
  /** Median rps over the direct row's median rps. */
  vsDirect: number;
  /** Median rps over the median rps of HAProxy in the same mode (NaN without HAProxy). */
  vsHaproxy: number;
  proxyCpu: Spread;
  backendCpu: Spread;
  loadgenCpu: Spread;
  /** The load generator used at least 90% of a core in the median round: it, not the target, may be the limit. */
  loadgenSaturated: boolean;
  note?: string;
}

/**
 * A ratio the issue sets a target for (or, without `target`, one printed for reference): a
 * figure of one row over the same figure of another, for one payload, medians over the rounds.
 */
export interface GoalSpec {
  payload: string;
  figure: 'rps' | 'p99';
  /** The row measured (target id) and the row it is compared with. */
  of: string;
  against: string;
  /** `>=`: the ratio must reach the target (throughput); `<=`: stay under it (latency). */
  op?: '>=' | '<=';
  target?: number;
}

/** A goal with its figures; `met` is undefined when a row is missing or there is no target. */
export interface GoalResult extends GoalSpec {
  ofLabel: string;
  againstLabel: string;
  ofValue: number;
  againstValue: number;
  ratio: number;
  met?: boolean;
}

/**
 * The targets for the native engine ("Drover HTTP"), 100-byte answers at 50
 * connections, and two ratios for reference (no target): against the fastest Node peer and
 * against Drover's previous engine.
 */
export const GOALS: GoalSpec[] = [
  { payload: 'small', figure: 'rps', of: 'drover-http', against: 'haproxy-http', op: '>=', target: 0.7 },
  { payload: 'small', figure: 'rps', of: 'drover-http', against: 'http-proxy-ka', op: '>=', target: 3 },
  { payload: 'small', figure: 'p99', of: 'drover-http', against: 'haproxy-http', op: '<=', target: 1.5 },
  { payload: 'small', figure: 'rps', of: 'drover-http', against: 'fastify-proxy' },
  { payload: 'small', figure: 'rps', of: 'drover-http', against: 'drover-http-proxy' },
];

/** Everything the throughput scenario produced. */
export interface ThroughputResult {
  plan: ThroughputPlan;
  payloads: Array<Omit<Payload, 'body'> & { bodyBytes: number }>;
  backend: Backend['kind'];
  skipped: Skipped[];
  rows: ThroughputRow[];
  measurements: Measurement[];
  /** GOALS evaluated on the rows (those whose two rows both ran). */
  goals: GoalResult[];
}

/** Saturation threshold for the load generator, as a fraction of one core. */
export const SATURATED = 0.9;

/** Runs the scenario over already started targets. */
export async function throughput(
  targets: Target[],
  backend: Backend,
  skipped: Skipped[],
  plan: ThroughputPlan,
  progress: (line: string) => void,
): Promise<ThroughputResult> {
  const measurements: Measurement[] = [];
  for (let round = 1; round <= plan.rounds; round++) {
    for (const payload of PAYLOADS) {
      const order = targets.map((_, i) => targets[(i + round - 1) % targets.length]!);
      for (const [i, target] of order.entries()) {
        const spec = {
          url: `http://127.0.0.1:${target.port}${payload.path}`,
          connections: payload.connections,
          method: payload.method,
          ...(payload.body ? { body: payload.body } : {}),
          workers: plan.workers,
        };
        if (plan.warmEveryRound || round === 1) await runLoad({ ...spec, durationS: plan.warmupS });
        await sleep(plan.pauseMs);
        const r = await runLoad({ ...spec, durationS: plan.measureS }, { proxy: target.pids, backend: backend.pids });
        measurements.push({ ...r, round, target: target.id, payload: payload.id, order: i });
        progress(
          `round ${round}/${plan.rounds} ${payload.id.padEnd(6)} ${target.id.padEnd(20)} ${fmt(r.rps).padStart(8)} req/s  p99 ${r.p99.toFixed(2)} ms  errors ${r.errors}  loadgen ${pct(r.loadgenCpu)}`,
        );
      }
    }
  }
  const rows: ThroughputRow[] = [];
  for (const payload of PAYLOADS) {
    const of = (id: string) => measurements.filter((m) => m.payload === payload.id && m.target === id);
    const directRps = spread(of('direct').map((m) => m.rps)).median;
    for (const target of targets) {
      const ms = of(target.id);
      const rps = spread(ms.map((m) => m.rps));
      const haproxyId = target.mode === 'tcp' ? 'haproxy-tcp' : 'haproxy-http';
      const haproxyRps = spread(of(haproxyId).map((m) => m.rps)).median;
      const loadgenCpu = spread(ms.map((m) => m.loadgenCpu));
      rows.push({
        target: target.id,
        label: target.label,
        mode: target.mode,
        payload: payload.id,
        rps,
        p50: spread(ms.map((m) => m.p50)),
        p99: spread(ms.map((m) => m.p99)),
        p999: spread(ms.map((m) => m.p999)),
        errors: sum(ms.map((m) => m.errors)),
        requests: sum(ms.map((m) => m.requests)),
        vsDirect: rps.median / directRps,
        vsHaproxy: target.mode === 'direct' ? NaN : rps.median / haproxyRps,
        proxyCpu: spread(ms.map((m) => m.cpu.proxy ?? NaN)),
        backendCpu: spread(ms.map((m) => m.cpu.backend ?? NaN)),
        loadgenCpu,
        loadgenSaturated: loadgenCpu.median >= SATURATED * Math.max(1, plan.workers),
        ...(target.note ? { note: target.note } : {}),
      });
    }
  }
  return {
    plan,
    payloads: PAYLOADS.map(({ body, ...p }) => ({ ...p, bodyBytes: body?.length ?? 0 })),
    backend: backend.kind,
    skipped,
    rows,
    measurements,
    goals: evaluateGoals(rows, targets, skipped),
  };
}

/** GOALS on these rows; a goal whose rows did not both run is kept with `met` undefined and NaN figures. */
export function evaluateGoals(rows: ThroughputRow[], targets: Target[], skipped: Skipped[]): GoalResult[] {
  const labelOf = (id: string) => targets.find((t) => t.id === id)?.label ?? skipped.find((t) => t.id === id)?.label ?? id;
  return GOALS.map((g) => {
    const a = rows.find((r) => r.payload === g.payload && r.target === g.of);
    const b = rows.find((r) => r.payload === g.payload && r.target === g.against);
    const ofValue = a ? a[g.figure].median : NaN;
    const againstValue = b ? b[g.figure].median : NaN;
    const ratio = ofValue / againstValue;
    const met = g.target === undefined || !Number.isFinite(ratio) ? undefined : g.op === '<=' ? ratio <= g.target : ratio >= g.target;
    return { ...g, ofLabel: labelOf(g.of), againstLabel: labelOf(g.against), ofValue, againstValue, ratio, ...(met === undefined ? {} : { met }) };
  });
}

function fmt(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}

function pct(x: number): string {
  return `${Math.round(x * 100)}%`;
}
