/**
 * `npm run bench`: the benchmark suite (see bench/README.md). Starts every target in its own
 * process, runs the scenarios with autocannon in this process, prints the tables, and writes
 * bench/results/<date>.json (machine, plan and every round's raw figures), <date>.md (the
 * tables) and <date>.svg (the chart), and for full runs copies them to latest.*.
 *
 * Options: --quick (about 85 s here), --soak DURATION (default 10m; 30s, 2m...), --no-soak,
 * --rounds N, --workers N (autocannon worker threads), --only LIST (throughput, strategies,
 * discovery, scale), --cpu-prof [--engine E] (only a CPU profile of Drover HTTP, see
 * profile.ts), --help.
 */
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { machineInfo, machineLine } from './lib/machine.js';
import { profile, profilePlan } from './profile.js';
import { findBinary, ROOT } from './lib/procs.js';
import { fmtDuration, markdownTable, scaleTables, strategyTables, textTable, throughputChart, throughputTables, type Table } from './lib/report.js';
import { startBackend, startTargets, type Backend, type Target } from './lib/targets.js';
import { discovery, type DiscoveryResult } from './scenarios/discovery.js';
import { scale, type ScaleResult } from './scenarios/scale.js';
import { strategies, type StrategyResult } from './scenarios/strategies.js';
import { throughput, type ThroughputResult } from './scenarios/throughput.js';

const HELP = `Usage: npm run bench [-- OPTIONS]     (builds, then runs node dist/bench/run.js)

  --quick            about 85 s here: short rounds, short soak; results named <date>-quick.*
  --soak DURATION    soak length (default 10m in a full run, 5s with --quick): 30s, 2m, 10m
  --no-soak          skip the soak
  --rounds N         interleaved rounds (default 3; at least 3 are recommended)
  --workers N        autocannon worker threads (default 0: the bench process's main thread)
  --only LIST        comma-separated: throughput,strategies,discovery,scale (default all)
  --cpu-prof         instead of the scenarios: Drover HTTP (native engine) under node --cpu-prof
                     for one 100 B measurement (5 s; 2 s with --quick), then a summary of where
                     the time goes (self time by function, idle and GC included)
  --engine E         with --cpu-prof: native (default) or http-proxy
  -h, --help         this text

Needs: haproxy, nginx-light, libnginx-mod-stream (apt-get) for the peer rows, zookeeper for
discovery; each part whose software is missing is skipped with a note.`;

const SCENARIOS = ['throughput', 'strategies', 'discovery', 'scale'] as const;

function parseDuration(text: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|min|h)?$/.exec(text.trim());
  if (!m) throw new Error(`--soak: expected a duration like 30s, 2m or 10m, got "${text}"`);
  const n = Number(m[1]);
  const unit = m[2] ?? 's';
  return unit === 'ms' ? n / 1000 : unit === 'm' || unit === 'min' ? n * 60 : unit === 'h' ? n * 3600 : n;
}

function stamp(d: Date): string {
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}${p(d.getMinutes())}`;
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      quick: { type: 'boolean', default: false },
      soak: { type: 'string' },
      'no-soak': { type: 'boolean', default: false },
      rounds: { type: 'string' },
      workers: { type: 'string' },
      only: { type: 'string' },
      'cpu-prof': { type: 'boolean', default: false },
      engine: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  const quick = values.quick;
  if (values['cpu-prof']) {
    const t0 = Date.now();
    return profile(profilePlan(values.engine, quick), (line) => console.log(`[${((Date.now() - t0) / 1000).toFixed(0).padStart(4)} s] ${line}`));
  }
  if (values.engine !== undefined) throw new Error('--engine: only with --cpu-prof (the throughput table has a row per engine)');
  const rounds = values.rounds ? Number(values.rounds) : 3;
  const workers = values.workers ? Number(values.workers) : 0;
  if (!Number.isInteger(rounds) || rounds < 1) throw new Error('--rounds: expected a whole number >= 1');
  if (!Number.isInteger(workers) || workers < 0) throw new Error('--workers: expected a whole number >= 0');
  const only = new Set(values.only ? values.only.split(',').map((s) => s.trim()) : SCENARIOS);
  for (const s of only) if (!(SCENARIOS as readonly string[]).includes(s)) throw new Error(`--only: unknown scenario ${s} (${SCENARIOS.join(', ')})`);
  const soakS = values['no-soak'] ? 0 : values.soak ? parseDuration(values.soak) : quick ? 5 : 600;

  const bins = { haproxy: findBinary('haproxy'), nginx: findBinary('nginx') };
  const machine = machineInfo(bins);
  const started = new Date();
  const t0 = Date.now();
  const log = (line: string) => console.log(`[${((Date.now() - t0) / 1000).toFixed(0).padStart(4)} s] ${line}`);
  console.log(`Drover benchmark${quick ? ' (--quick)' : ''}, ${started.toISOString()}`);
  console.log(`machine: ${machineLine(machine)}`);
  if (machine.loadAverageAtStart[0]! > machine.cores * 0.5) {
    console.log(`note: the machine is already busy (load average ${machine.loadAverageAtStart[0]} on ${machine.cores} cores): expect noise, read the ratios`);
  }
  if (!bins.haproxy) console.log('note: haproxy not found: its rows are skipped (apt-get install haproxy)');
  if (!bins.nginx) console.log('note: nginx not found: its rows are skipped and the backend is a minimal Node server (apt-get install nginx-light libnginx-mod-stream)');
  if (process.env.DROVER_HTTP_ENGINE) {
    console.log(`note: DROVER_HTTP_ENGINE=${process.env.DROVER_HTTP_ENGINE}: the throughput and memory rows name their engine and ignore it; the strategies, discovery and soak scenarios follow it`);
  }

  const tables: Table[] = [];
  let throughputResult: ThroughputResult | undefined;
  let strategyResult: StrategyResult | undefined;
  let discoveryResult: DiscoveryResult | undefined;
  let scaleResult: ScaleResult | undefined;
  let backend: Backend | undefined;
  let targets: Target[] = [];
  try {
    backend = await startBackend(bins.nginx);
    log(`backend: ${backend.kind} on 127.0.0.1:${backend.port}`);
    if (only.has('throughput')) {
      const started = await startTargets(backend, bins);
      targets = started.targets;
      for (const s of started.skipped) log(`skipped ${s.label}: ${s.reason}`);
      log(`targets: ${targets.map((t) => `${t.id}:${t.port}`).join(' ')}`);
      throughputResult = await throughput(
        targets,
        backend,
        started.skipped,
        quick
          ? { rounds, warmupS: 0.15, measureS: 0.15, warmEveryRound: false, pauseMs: 0, workers }
          : { rounds, warmupS: 2, measureS: 5, warmEveryRound: true, pauseMs: 100, workers },
        log,
      );
      await Promise.all(targets.map((t) => t.stop()));
      targets = [];
      tables.push(...throughputTables(throughputResult));
    }
    if (only.has('strategies')) {
      strategyResult = await strategies(
        quick
          ? { rounds, warmupS: 0.1, pauseMs: 100, slowS: 0.5, flapS: 0.6, flapMs: 300, connections: 12, fastMs: 10, slots: 4 }
          : { rounds, warmupS: 1, pauseMs: 300, slowS: 10, flapS: 20, flapMs: 10_000, connections: 12, fastMs: 10, slots: 4 },
        log,
      );
      tables.push(...strategyTables(strategyResult));
    }
    if (only.has('discovery')) {
      discoveryResult = await discovery(quick ? { repetitions: 3, settleMs: 300, concurrency: 4 } : { repetitions: 10, settleMs: 500, concurrency: 4 }, log);
      if (discoveryResult.skipped) log(`discovery skipped: ${discoveryResult.skipped}`);
    }
    if (only.has('scale')) {
      scaleResult = await scale(
        {
          rounds,
          connections: quick ? 1000 : 10_000,
          idlePeers: !quick,
          soakS,
          soakRefS: Math.min(60, soakS / 5),
          soakRate: 1500,
          soakConnections: 20,
          soakSampleS: quick ? 1 : 10,
        },
        backend,
        bins,
        log,
      );
    }
    if (only.has('discovery') || only.has('scale')) tables.push(...scaleTables(discoveryResult, scaleResult));
  } finally {
    await Promise.all(targets.map((t) => t.stop()));
    await backend?.stop();
  }

  const finished = new Date();
  const loadAverageAtEnd = loadavg().map((x) => Math.round(x * 100) / 100);
  // Quick and partial (--only) runs get their own suffix and never replace latest.*.
  const partial = only.size < SCENARIOS.length;
  const name = `${stamp(started)}${quick ? '-quick' : ''}${partial ? '-partial' : ''}`;
  const dir = join(ROOT, 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  const result = {
    version: 1,
    kind: quick ? 'quick' : 'full',
    scenarios: [...only],
    startedAt: started.toISOString(),
    finishedAt: finished.toISOString(),
    durationS: Math.round((finished.getTime() - started.getTime()) / 1000),
    argv: process.argv.slice(2),
    machine,
    loadAverageAtEnd,
    throughput: throughputResult,
    strategies: strategyResult,
    discovery: discoveryResult,
    scale: scaleResult,
  };
  writeFileSync(join(dir, `${name}.json`), JSON.stringify(result, (_k, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? null : v), 2) + '\n');
  const header = [
    `Run ${started.toISOString().slice(0, 16).replace('T', ' ')} UTC${quick ? ' (--quick)' : ''}, ${fmtDuration(result.durationS)}; commit ${machine.commit}.`,
    `Machine: ${machineLine(machine)}; load average at the end ${loadAverageAtEnd.join(' / ')}.`,
  ];
  const md = [...header, '', ...tables.map((t) => markdownTable(t) + '\n')].join('\n');
  writeFileSync(join(dir, `${name}.md`), md);
  const written = [`${name}.json`, `${name}.md`];
  if (throughputResult) {
    writeFileSync(join(dir, `${name}.svg`), throughputChart(throughputResult, machine, started.toISOString().slice(0, 10)));
    written.push(`${name}.svg`);
  }
  if (!quick && !partial) {
    for (const ext of ['json', 'md', 'svg']) {
      if (written.includes(`${name}.${ext}`)) copyFileSync(join(dir, `${name}.${ext}`), join(dir, `latest.${ext}`));
    }
  }

  console.log('');
  for (const t of tables) console.log(textTable(t) + '\n');
  console.log(header.join('\n'));
  console.log(`written: ${written.map((w) => `bench/results/${w}`).join(', ')}${quick ? ' (quick and partial runs leave latest.* alone)' : ', copied to bench/results/latest.*'}`);
  return 0;
}

process.on('SIGINT', () => process.exit(130));
process.on('SIGTERM', () => process.exit(143));
main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(`bench: ${(err as Error).stack ?? String(err)}`);
    process.exit(1);
  },
);
