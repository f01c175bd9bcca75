/**
 * Scale: Drover's memory per 10,000 idle connections, and its memory over a soak at steady load.
 *
 * Idle connections: a fresh Drover process per measurement, with a TCP listener (to a backend
 * that accepts and holds connections) or an HTTP listener (to the cheap backend) on the native
 * engine or on the http-proxy engine. TCP: N client connections are opened and Drover has
 * connected each to the backend (2 sockets in Drover per client); HTTP: N client connections
 * each make one keep-alive request and stay open, idle. Memory is read after a full
 * GC before and after; the difference is scaled to 10,000 connections. Each proxied TCP
 * connection costs Drover two file descriptors, so under a 20,000 open-files limit (this
 * machine's hard limit) TCP is measured with fewer than 10,000 and scaled; the result says so.
 *
 * Soak: Drover HTTP at a fixed request rate for the soak time; its memory (after a full GC) is
 * sampled throughout, and the figure at the reference point (1 minute) is compared with the end.
 */
import { connect, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { runLoad, type LoadResult } from '../lib/load.js';
import { startHaproxy, startNginxHttp, startNginxTcp } from '../lib/peers.js';
import { forkChild, freePorts, openFileLimit, processTree, rssBytes, sleep, type Child } from '../lib/procs.js';
import { spread, type Spread } from '../lib/stats.js';
import { droverYaml, engineNote, startDrover, type Backend, type DroverEngine, type DroverProcess } from '../lib/targets.js';

/** The issue's target: at most this much RSS per 10,000 idle keep-alive connections on the native engine. */
export const IDLE_RSS_GOAL_BYTES = 40 * 2 ** 20;

/** Sizes and durations of the scale scenarios. */
export interface ScalePlan {
  rounds: number;
  /** Connections wanted per round (10,000; fewer in --quick). */
  connections: number;
  /** Also measure HAProxy and nginx (when installed). */
  idlePeers: boolean;
  /** Soak length in seconds; 0 skips the soak. */
  soakS: number;
  /** The reference point the end of the soak is compared with, in seconds (60 in a full run). */
  soakRefS: number;
  soakRate: number;
  soakConnections: number;
  /** Seconds between memory samples during the soak. */
  soakSampleS: number;
}

/** Memory figures of one Drover process, in bytes. */
export interface Mem {
  rss: number;
  heapUsed: number;
  external: number;
  arrayBuffers: number;
  connections: number;
}

/** One idle-connection measurement (a fresh proxy process each time). */
export interface IdleRound {
  target: string;
  label: string;
  mode: 'tcp' | 'http';
  round: number;
  connections: number;
  rssBefore: number;
  rssAfter: number;
  /** (after - before) scaled to 10,000 connections, bytes. */
  rssPer10k: number;
  /** Drover only: JS heap after a full GC, (after - before) scaled to 10,000. */
  heapPer10k: number;
}

/** Summary of the idle-connection measurements of one proxy. */
export interface IdleSummary {
  target: string;
  label: string;
  mode: 'tcp' | 'http';
  connections: number;
  rssPer10k: Spread;
  heapPer10k: Spread;
}

/** A memory sample during the soak. */
export interface SoakSample extends Mem {
  atS: number;
}

/** The soak's result. */
export interface SoakResult {
  durationS: number;
  refS: number;
  rate: number;
  load?: LoadResult;
  samples: SoakSample[];
  atRef?: SoakSample;
  atEnd?: SoakSample;
  /** Heap growth from the reference point to the end, bytes and relative. */
  heapGrowth?: number;
  heapGrowthRatio?: number;
  rssGrowth?: number;
  rssGrowthRatio?: number;
  /** Least-squares slope of the heap after the reference point, bytes per minute. */
  heapSlopePerMin?: number;
  /** Whether memory was flat: heap within 10% (or 2 MB) of the reference at the end. */
  flat?: boolean;
}

/** The native engine's RSS per 10,000 idle keep-alive connections against the issue's target. */
export interface IdleGoal {
  target: string;
  label: string;
  goalBytes: number;
  /** Median over the rounds. */
  rssPer10k: number;
  met?: boolean;
}

/** Everything the scale scenario produced. */
export interface ScaleResult {
  plan: ScalePlan;
  idle: IdleSummary[];
  idleRounds: IdleRound[];
  idleNotes: string[];
  idleGoal?: IdleGoal;
  soak?: SoakResult;
  soakSkipped?: string;
}

async function mem(d: DroverProcess): Promise<Mem> {
  const m = (await d.child.ask({ type: 'mem' })) as unknown as Mem;
  return { rss: m.rss, heapUsed: m.heapUsed, external: m.external, arrayBuffers: m.arrayBuffers, connections: m.connections };
}

/** Opens `count` connections to 127.0.0.1:port, `batch` at a time; with `request`, each makes one keep-alive request first. */
async function openMany(port: number, count: number, request: boolean, batch = 200): Promise<Socket[]> {
  const sockets: Socket[] = [];
  const one = () =>
    new Promise<Socket>((resolve, reject) => {
      const s = connect({ host: '127.0.0.1', port });
      s.on('error', reject);
      s.once('connect', () => {
        if (!request) return resolve(s);
        s.write('GET /small HTTP/1.1\r\nHost: bench\r\n\r\n');
        let seen = '';
        const onData = (c: Buffer) => {
          seen += c.toString('latin1');
          // The small answer has a Content-Length; its end is the body after the blank line.
          const head = seen.indexOf('\r\n\r\n');
          const len = /content-length: (\d+)/i.exec(seen);
          if (head >= 0 && len && seen.length >= head + 4 + Number(len[1])) {
            s.off('data', onData);
            resolve(s);
          }
        };
        s.on('data', onData);
      });
    });
  for (let i = 0; i < count; i += batch) {
    const n = Math.min(batch, count - i);
    sockets.push(...(await Promise.all(Array.from({ length: n }, one))));
  }
  for (const s of sockets) s.on('error', () => {});
  return sockets;
}

async function closeAll(sockets: Socket[]): Promise<void> {
  for (const s of sockets) s.destroy();
  await sleep(200);
}

async function waitFor(what: string, test: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!(await test())) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

/** A proxy whose idle-connection memory is measured: started fresh for every round. */
interface IdleTarget {
  id: string;
  label: string;
  mode: 'tcp' | 'http';
  start(tcpBackend: number, httpBackend: number): Promise<IdleInstance>;
}

interface IdleInstance {
  port: number;
  /** Set when the process does not run what the row names (the native engine fell back). */
  note?: string;
  /** Memory now; `heapUsed` only for Drover (after a full GC). */
  mem(): Promise<{ rss: number; heapUsed?: number; connections?: number }>;
  stop(): Promise<void>;
}

/** Drover in TCP mode, or in HTTP mode on one engine (native, the default, or http-proxy). */
function droverIdle(mode: 'tcp' | 'http', engine: DroverEngine = 'native'): IdleTarget {
  const old = mode === 'http' && engine === 'http-proxy';
  return {
    id: old ? 'drover-http-proxy' : `drover-${mode}`,
    label: old ? 'Drover HTTP (http-proxy engine)' : `Drover ${mode.toUpperCase()}`,
    mode,
    async start(tcpBackend, httpBackend) {
      const d = await startDrover(
        `drover-idle-${mode}${old ? '-http-proxy' : ''}`,
        droverYaml(mode, mode === 'tcp' ? tcpBackend : httpBackend, '', engine, mode === 'http' ? '    timeouts: { idle: 10m }\n' : ''),
      );
      const note = mode === 'http' ? engineNote(d, engine) : undefined;
      return { port: d.ports.get('bench')!, mem: () => mem(d), stop: () => d.stop(), ...(note ? { note } : {}) };
    },
  };
}

function peerIdle(kind: 'haproxy' | 'nginx', bin: string, mode: 'tcp' | 'http', count: number): IdleTarget {
  return {
    id: `${kind}-${mode}`,
    label: `${kind === 'haproxy' ? 'HAProxy' : 'nginx'} ${mode.toUpperCase()}`,
    mode,
    async start(tcpBackend, httpBackend) {
      const [port] = await freePorts(1);
      const backend = mode === 'tcp' ? tcpBackend : httpBackend;
      const p =
        kind === 'haproxy'
          ? await startHaproxy(bin, mode, port!, backend, count + 190)
          : mode === 'tcp'
            ? await startNginxTcp(bin, port!, backend)
            : await startNginxHttp(bin, port!, backend);
      const pids = processTree(p.child.pid);
      return { port: p.port, mem: async () => ({ rss: rssBytes(pids) }), stop: () => p.stop() };
    },
  };
}

async function idleConnections(
  plan: ScalePlan,
  backend: Backend,
  bins: { haproxy?: string; nginx?: string },
  progress: (line: string) => void,
): Promise<{ idle: IdleSummary[]; rounds: IdleRound[]; notes: string[]; goal?: IdleGoal }> {
  // A proxied TCP connection holds 2 descriptors in the proxy, and HAProxy reserves 2 per
  // connection in any mode: keep 400 for everything else. Every proxy and mode gets the same count.
  const limit = openFileLimit();
  const count = Math.min(plan.connections, Math.floor((limit - 400) / 2));
  const targets: IdleTarget[] = [droverIdle('tcp'), droverIdle('http'), droverIdle('http', 'http-proxy')];
  if (plan.idlePeers) {
    for (const mode of ['tcp', 'http'] as const) {
      if (bins.haproxy) targets.push(peerIdle('haproxy', bins.haproxy, mode, count));
      if (bins.nginx) targets.push(peerIdle('nginx', bins.nginx, mode, count));
    }
  }
  const hold = forkChild('hold-backend', 'children/backend.js', ['hold']);
  const { ports } = (await hold.next('listening')) as { ports: number[] };
  const rounds: IdleRound[] = [];
  const notes: string[] = [];
  try {
    for (let round = 1; round <= plan.rounds; round++) {
      const order = targets.map((_, i) => targets[(i + round - 1) % targets.length]!);
      for (const target of order) {
        const mode = target.mode;
        const instance = await target.start(ports[0]!, backend.port);
        if (instance.note && !notes.includes(`${target.label}: ${instance.note}`)) notes.push(`${target.label}: ${instance.note}`);
        try {
          // Warm the path so first-use allocations (JIT, pools) are not counted per connection.
          await closeAll(await openMany(instance.port, 200, mode === 'http'));
          await waitFor('the hold backend to see the warm-up connections closed', async () => (await holdStats(hold)) === 0);
          await sleep(300);
          const before = await instance.mem();
          const sockets = await openMany(instance.port, count, mode === 'http');
          if (mode === 'tcp') await waitFor(`${count} connections at the hold backend`, async () => (await holdStats(hold)) >= count);
          await sleep(500);
          const after = await instance.mem();
          await closeAll(sockets);
          const scale = 10_000 / count;
          const r: IdleRound = {
            target: target.id,
            label: target.label,
            mode,
            round,
            connections: count,
            rssBefore: before.rss,
            rssAfter: after.rss,
            rssPer10k: (after.rss - before.rss) * scale,
            heapPer10k: before.heapUsed !== undefined && after.heapUsed !== undefined ? (after.heapUsed - before.heapUsed) * scale : NaN,
          };
          rounds.push(r);
          progress(
            `idle ${target.id.padEnd(12)} round ${round}/${plan.rounds}: ${count} connections, RSS +${mb(after.rss - before.rss)} (${mb(r.rssPer10k)} per 10k)${Number.isFinite(r.heapPer10k) ? `, JS heap ${mb(r.heapPer10k)} per 10k` : ''}`,
          );
        } finally {
          await instance.stop();
        }
        await waitFor('the hold backend to see every connection closed', async () => (await holdStats(hold)) === 0);
      }
    }
  } finally {
    await hold.stop();
  }
  const idle = targets.map((t) => {
    const rs = rounds.filter((r) => r.target === t.id);
    return {
      target: t.id,
      label: t.label,
      mode: t.mode,
      connections: count,
      rssPer10k: spread(rs.map((r) => r.rssPer10k)),
      heapPer10k: spread(rs.map((r) => r.heapPer10k)),
    };
  });
  if (count < 10_000) {
    notes.push(
      `measured with ${int(count)} connections and scaled to 10,000${count < plan.connections ? ` (open-files limit ${limit}: a proxied connection takes 2 descriptors in the proxy)` : ''}`,
    );
  }
  const native = idle.find((x) => x.target === 'drover-http');
  const goal: IdleGoal | undefined =
    native && Number.isFinite(native.rssPer10k.median)
      ? {
          target: native.target,
          label: native.label,
          goalBytes: IDLE_RSS_GOAL_BYTES,
          rssPer10k: native.rssPer10k.median,
          met: native.rssPer10k.median <= IDLE_RSS_GOAL_BYTES,
        }
      : undefined;
  return { idle, rounds, notes, ...(goal ? { goal } : {}) };
}

function int(n: number): string {
  return n.toLocaleString('en-US');
}

async function holdStats(hold: Child): Promise<number> {
  return ((await hold.ask({ type: 'stats' })) as { connections: number }).connections;
}

async function soak(plan: ScalePlan, backend: Backend, progress: (line: string) => void): Promise<SoakResult> {
  const drover = await startDrover(
    'drover-soak',
    `drainTimeout: 1s
logLevel: warn
services:
  web:
    static: [127.0.0.1:${backend.port}]
listeners:
  - name: web
    mode: http
    bind: 127.0.0.1:0
    service: web
`,
  );
  const samples: SoakSample[] = [];
  try {
    const url = `http://127.0.0.1:${drover.ports.get('web')}/small`;
    await runLoad({ url, connections: plan.soakConnections, overallRate: plan.soakRate, durationS: Math.min(5, plan.soakS / 4) });
    const t0 = performance.now();
    let sampling = true;
    const sampler = (async () => {
      let next = 0;
      while (sampling) {
        const atS = (performance.now() - t0) / 1000;
        if (atS >= next) {
          const m = await mem(drover);
          samples.push({ atS: (performance.now() - t0) / 1000, ...m });
          if (samples.length % Math.max(1, Math.round(60 / plan.soakSampleS)) === 0 || next === 0) {
            progress(`soak ${Math.round(atS)}/${plan.soakS} s: heap ${mb(m.heapUsed)}, RSS ${mb(m.rss)}`);
          }
          next += plan.soakSampleS;
        }
        await sleep(100);
      }
    })();
    const load = await runLoad({ url, connections: plan.soakConnections, overallRate: plan.soakRate, durationS: plan.soakS }, { drover: [drover.child.pid] });
    sampling = false;
    await sampler;
    samples.push({ atS: (performance.now() - t0) / 1000, ...(await mem(drover)) });
    const atRef = samples.reduce((best, s) => (Math.abs(s.atS - plan.soakRefS) < Math.abs(best.atS - plan.soakRefS) ? s : best), samples[0]!);
    // The end: the last sample taken while the load still ran (the final one is after it stopped).
    const atEnd = samples.filter((s) => s.atS <= plan.soakS + 0.5).at(-1) ?? samples.at(-1)!;
    const after = samples.filter((s) => s.atS >= atRef.atS && s.atS <= atEnd.atS);
    const heapGrowth = atEnd.heapUsed - atRef.heapUsed;
    return {
      durationS: plan.soakS,
      refS: plan.soakRefS,
      rate: plan.soakRate,
      load,
      samples,
      atRef,
      atEnd,
      heapGrowth,
      heapGrowthRatio: heapGrowth / atRef.heapUsed,
      rssGrowth: atEnd.rss - atRef.rss,
      rssGrowthRatio: (atEnd.rss - atRef.rss) / atRef.rss,
      heapSlopePerMin: slope(after.map((s) => [s.atS / 60, s.heapUsed])),
      flat: heapGrowth <= Math.max(0.1 * atRef.heapUsed, 2 * 2 ** 20),
    };
  } finally {
    await drover.stop();
  }
}

/** Least-squares slope of y over x. */
function slope(points: Array<[number, number]>): number {
  if (points.length < 2) return NaN;
  const n = points.length;
  const mx = points.reduce((a, p) => a + p[0], 0) / n;
  const my = points.reduce((a, p) => a + p[1], 0) / n;
  let num = 0;
  let den = 0;
  for (const [x, y] of points) {
    num += (x - mx) * (y - my);
    den += (x - mx) ** 2;
  }
  return den ? num / den : NaN;
}

function mb(bytes: number): string {
  return `${(bytes / 2 ** 20).toFixed(1)} MB`;
}

/** Runs the idle-connection measurements and (unless plan.soakS is 0) the soak. */
export async function scale(
  plan: ScalePlan,
  backend: Backend,
  bins: { haproxy?: string; nginx?: string },
  progress: (line: string) => void,
): Promise<ScaleResult> {
  const { idle, rounds, notes, goal } = await idleConnections(plan, backend, bins, progress);
  const base = { plan, idle, idleRounds: rounds, idleNotes: notes, ...(goal ? { idleGoal: goal } : {}) };
  if (plan.soakS <= 0) return { ...base, soakSkipped: 'skipped (--no-soak)' };
  return { ...base, soak: await soak(plan, backend, progress) };
}
