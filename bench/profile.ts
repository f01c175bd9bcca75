/**
 * `npm run bench -- --cpu-prof`: where Drover HTTP's time goes. Starts the backend (nginx when
 * installed, as in the throughput scenario) and Drover HTTP on the native engine (or
 * `--engine http-proxy`) under `node --cpu-prof`, runs one 100 B measurement (50 connections,
 * closed loop, after a warm-up), stops Drover so V8 writes the profile, and prints a short
 * summary of the samples taken during the measurement: the share by kind of code (Drover,
 * Node's JavaScript, native code, GC, idle), the functions with the most self time, and the
 * files. The .cpuprofile stays in a temporary folder (printed) for Chrome DevTools or VS Code.
 *
 * Also runs on its own: node dist/bench/profile.js [--engine native|http-proxy] [--quick]
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { runLoad, type LoadResult } from './lib/load.js';
import { cpuSplit, findBinary, ROOT } from './lib/procs.js';
import { droverYaml, engineNote, startBackend, startDrover, type DroverEngine } from './lib/targets.js';

/** What to profile and for how long. */
export interface ProfilePlan {
  engine: DroverEngine;
  warmupS: number;
  measureS: number;
  connections: number;
  /** Functions listed in the summary. */
  top: number;
}

/** A V8 .cpuprofile, the parts read here. */
interface CpuProfile {
  nodes: Array<{ id: number; callFrame: { functionName: string; url: string; lineNumber: number } }>;
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

/** Self time of one function or group, in samples. */
interface Share {
  name: string;
  samples: number;
}

/** The summary of a profile's samples over a time window. */
export interface ProfileSummary {
  samples: number;
  /** Whether only the measurement's samples were counted (else the whole process life). */
  windowed: boolean;
  kinds: Share[];
  functions: Share[];
  files: Share[];
}

const SPECIAL: Record<string, string> = {
  '(idle)': 'idle (waiting for I/O)',
  '(garbage collector)': 'garbage collector',
  '(program)': 'V8 and native code not attributed to a JS function (program)',
  '(root)': 'root',
};

/** A file's path for display: relative to the repository, `node:` modules as they are. */
function shortUrl(url: string): string {
  let path = url;
  if (path.startsWith('file://')) path = fileURLToPath(path);
  if (path.startsWith(ROOT)) path = path.slice(ROOT.length);
  return path;
}

/** The kind of code a frame belongs to. */
function kindOf(functionName: string, url: string): string {
  if (SPECIAL[functionName] && !url) return SPECIAL[functionName]!;
  if (!url) return 'native functions called from JS (C++ bindings, V8 builtins), system calls they make included';
  const path = shortUrl(url);
  if (path.startsWith('node:')) return "Node's JavaScript (node:net, streams, timers, events...)";
  if (path.includes('node_modules/')) return `dependencies (${/node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(path)?.[1] ?? '?'})`;
  if (path.startsWith('dist/src/')) return 'Drover (dist/src)';
  if (path.startsWith('dist/bench/')) return 'bench child (dist/bench)';
  return 'other JavaScript';
}

function top(map: Map<string, number>, n = Infinity): Share[] {
  return [...map.entries()]
    .map(([name, samples]) => ({ name, samples }))
    .sort((a, b) => b.samples - a.samples)
    .slice(0, n);
}

/** Self-time shares of the samples taken between `fromUs` and `toUs` (the profile's clock), or of all when the window does not fit. */
export function summarize(profile: CpuProfile, fromUs: number, toUs: number, topN: number): ProfileSummary {
  const byId = new Map(profile.nodes.map((n) => [n.id, n.callFrame]));
  const windowed = fromUs >= profile.startTime && toUs <= profile.endTime + 1e6 && toUs > fromUs;
  const kinds = new Map<string, number>();
  const functions = new Map<string, number>();
  const files = new Map<string, number>();
  let t = profile.startTime;
  let count = 0;
  for (let i = 0; i < profile.samples.length; i++) {
    t += profile.timeDeltas[i] ?? 0;
    if (windowed && (t < fromUs || t > toUs)) continue;
    const frame = byId.get(profile.samples[i]!);
    if (!frame) continue;
    count++;
    const kind = kindOf(frame.functionName, frame.url);
    kinds.set(kind, (kinds.get(kind) ?? 0) + 1);
    const where = frame.url ? ` ${shortUrl(frame.url)}:${frame.lineNumber + 1}` : SPECIAL[frame.functionName] ? '' : ' (native)';
    const fn = `${frame.functionName || '(anonymous)'}${where}`;
    functions.set(fn, (functions.get(fn) ?? 0) + 1);
    const file = frame.url ? shortUrl(frame.url) : SPECIAL[frame.functionName] ? frame.functionName : '(native)';
    files.set(file, (files.get(file) ?? 0) + 1);
  }
  return { samples: count, windowed, kinds: top(kinds), functions: top(functions, topN), files: top(files, 12) };
}

function pct(part: number, whole: number): string {
  return `${((100 * part) / whole).toFixed(1)}%`.padStart(6);
}

/** CPU time of the profiled process over the measurement, as fractions of one core. */
export interface CpuUse {
  user: number;
  system: number;
}

/** CPU seconds per second over requests per second, in microseconds per request. */
function perRequest(coresUsed: number, load: LoadResult): string {
  return load.rps > 0 ? ((coresUsed / load.rps) * 1e6).toFixed(1) : '-';
}

/** The summary as printed. */
export function summaryText(s: ProfileSummary, what: string, load: LoadResult, cpu: CpuUse, file: string, top: number): string {
  const busy = s.samples - (s.kinds.find((k) => k.name === SPECIAL['(idle)'])?.samples ?? 0);
  const core = (x: number) => `${Math.round(x * 100)}%`;
  const lines = [
    `CPU profile: ${what}`,
    `load during the measurement: ${Math.round(load.rps).toLocaleString('en-US')} req/s, p99 ${load.p99.toFixed(2)} ms, errors ${load.errors}; load generator CPU ${core(load.loadgenCpu)} (the profiler costs Drover some throughput)`,
    `Drover's CPU (/proc): ${core(cpu.user + cpu.system)} of a core, ${core(cpu.user)} user + ${core(cpu.system)} kernel (system calls: socket reads and writes, epoll); per request ${perRequest(cpu.user, load)} µs user + ${perRequest(cpu.system, load)} µs kernel`,
    `samples: ${s.samples.toLocaleString('en-US')} ${s.windowed ? 'taken during the measurement' : '(the whole process life: the clocks did not line up)'}; busy (not idle) ${pct(busy, s.samples).trim()}`,
    "  (V8 samples Drover's main thread every 1 ms of wall time; a native function's self time includes the system calls it makes: writeLatin1String, writeUtf8String, writeBuffer and writev are socket writes, and on loopback a write also runs the receiving socket's TCP processing)",
    '',
    'where the time goes (self time by kind of code, share of all samples):',
    ...s.kinds.map((k) => `  ${pct(k.samples, s.samples)}  ${k.name}`),
    '',
    `top ${top} functions by self time (share of all samples; idle and GC included):`,
    ...s.functions.map((f) => `  ${pct(f.samples, s.samples)}  ${f.name}`),
    '',
    'by file (self time):',
    ...s.files.map((f) => `  ${pct(f.samples, s.samples)}  ${f.name}`),
    '',
    `profile: ${file} (open it in Chrome DevTools, Performance tab, or in VS Code)`,
  ];
  return lines.join('\n');
}

/** Runs the profile and prints its summary. Returns the exit code. */
export async function profile(plan: ProfilePlan, log: (line: string) => void): Promise<number> {
  const backend = await startBackend(findBinary('nginx'));
  const dir = mkdtempSync(join(tmpdir(), 'drover-bench-profile-'));
  try {
    log(`backend: ${backend.kind} on 127.0.0.1:${backend.port}`);
    const drover = await startDrover(`drover-profile-${plan.engine}`, droverYaml('http', backend.port, '', plan.engine), [
      '--cpu-prof',
      '--cpu-prof-dir',
      dir,
      '--cpu-prof-name',
      'drover.cpuprofile',
    ]);
    const note = engineNote(drover, plan.engine);
    if (note) log(`note: ${note}`);
    let load: LoadResult;
    let fromUs: number;
    let toUs: number;
    let cpu: CpuUse;
    try {
      const url = `http://127.0.0.1:${drover.ports.get('bench')}/small`;
      log(`warm-up ${plan.warmupS} s, then ${plan.measureS} s at ${plan.connections} connections, Drover pid ${drover.child.pid} under --cpu-prof`);
      await runLoad({ url, connections: plan.connections, durationS: plan.warmupS });
      // V8 stamps samples with the monotonic clock, as process.hrtime does (microseconds there).
      fromUs = Number(process.hrtime.bigint() / 1000n);
      const cpu0 = cpuSplit([drover.child.pid]);
      load = await runLoad({ url, connections: plan.connections, durationS: plan.measureS }, { drover: [drover.child.pid] });
      const cpu1 = cpuSplit([drover.child.pid]);
      toUs = Number(process.hrtime.bigint() / 1000n);
      const wall = (toUs - fromUs) / 1e6;
      cpu = { user: (cpu1.user - cpu0.user) / wall, system: (cpu1.system - cpu0.system) / wall };
    } finally {
      // SIGTERM: the child stops Drover and exits normally, which is when V8 writes the profile.
      await drover.stop();
    }
    const file = join(dir, 'drover.cpuprofile');
    if (!existsSync(file)) throw new Error(`no profile written in ${dir} (${readdirSync(dir).join(', ') || 'empty'})`);
    const summary = summarize(JSON.parse(readFileSync(file, 'utf8')) as CpuProfile, fromUs, toUs, plan.top);
    const what = `Drover HTTP (${plan.engine} engine), GET 100 B, ${plan.connections} connections, ${plan.measureS} s after a ${plan.warmupS} s warm-up, backend ${backend.kind}`;
    console.log('');
    console.log(summaryText(summary, what, load, cpu, file, plan.top));
    return 0;
  } finally {
    await backend.stop();
  }
}

/** Options shared with run.ts: --engine, --quick. */
export function profilePlan(engine: string | undefined, quick: boolean): ProfilePlan {
  if (engine !== undefined && engine !== 'native' && engine !== 'http-proxy') throw new Error(`--engine: expected native or http-proxy, got "${engine}"`);
  return { engine: (engine ?? 'native') as DroverEngine, warmupS: quick ? 1 : 2, measureS: quick ? 2 : 5, connections: 50, top: 20 };
}

// Run directly: node dist/bench/profile.js [--engine native|http-proxy] [--quick]
if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const { values } = parseArgs({ options: { engine: { type: 'string' }, quick: { type: 'boolean', default: false } } });
  const t0 = Date.now();
  profile(profilePlan(values.engine, values.quick), (line) => console.log(`[${((Date.now() - t0) / 1000).toFixed(0).padStart(4)} s] ${line}`)).then(
    (code) => process.exit(code),
    (err: unknown) => {
      console.error(`profile: ${(err as Error).stack ?? String(err)}`);
      process.exit(1);
    },
  );
}
