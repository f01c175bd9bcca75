/**
 * Turns results into tables (aligned text for the terminal, Markdown for the README) and the
 * SVG chart.
 */
import type { DiscoveryResult } from '../scenarios/discovery.js';
import type { ScaleResult } from '../scenarios/scale.js';
import type { StrategyResult } from '../scenarios/strategies.js';
import { PAYLOADS, type GoalResult, type ThroughputResult } from '../scenarios/throughput.js';
import { machineLine, type MachineInfo } from './machine.js';
import type { Spread } from './stats.js';
import { chart, PALETTE, type Panel } from './svg.js';

/** A table: a title, column headers (a leading '>' right-aligns the column) and rows. */
export interface Table {
  title: string;
  columns: string[];
  rows: string[][];
  notes?: string[];
}

/** Aligned plain text. */
export function textTable(t: Table): string {
  const heads = t.columns.map((c) => c.replace(/^>/, ''));
  const widths = heads.map((h, i) => Math.max(h.length, ...t.rows.map((r) => (r[i] ?? '').length)));
  const right = t.columns.map((c) => c.startsWith('>'));
  const line = (cells: string[]) => cells.map((c, i) => (right[i] ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join('  ').trimEnd();
  return [t.title, line(heads), widths.map((w) => '-'.repeat(w)).join('  '), ...t.rows.map(line), ...(t.notes ?? []).map((n) => `  * ${n}`)].join('\n');
}

/** GitHub Markdown. */
export function markdownTable(t: Table, level = '####'): string {
  const heads = t.columns.map((c) => c.replace(/^>/, ''));
  const align = t.columns.map((c) => (c.startsWith('>') ? '---:' : '---'));
  const row = (cells: string[]) => `| ${cells.map((c) => c.replace(/\|/g, '\\|')).join(' | ')} |`;
  return [`${level} ${t.title}`, '', row(heads), `|${align.join('|')}|`, ...t.rows.map(row), ...(t.notes?.length ? ['', ...t.notes.map((n) => `- ${n}`)] : [])].join('\n');
}

/** 12,345 */
export function int(n: number): string {
  return Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : '-';
}

/** A latency in ms with sensible precision. */
export function ms(n: number): string {
  if (!Number.isFinite(n)) return '-';
  if (n >= 100) return n.toFixed(0);
  if (n >= 10) return n.toFixed(1);
  return n.toFixed(2);
}

/** "median (min-max)" */
function range(s: Spread, f: (n: number) => string): string {
  if (!Number.isFinite(s.median)) return '-';
  return `${f(s.median)} (${f(s.min)}-${f(s.max)})`;
}

function ratio(x: number): string {
  return Number.isFinite(x) ? `${x.toFixed(2)}x` : '-';
}

function pct(x: number): string {
  return Number.isFinite(x) ? `${Math.round(x * 100)}%` : '-';
}

function mb(bytes: number): string {
  return Number.isFinite(bytes) ? `${(bytes / 2 ** 20).toFixed(1)} MB` : '-';
}

/** One table per payload. */
export function throughputTables(r: ThroughputResult): Table[] {
  return PAYLOADS.map((p) => {
    const rows = r.rows.filter((x) => x.payload === p.id);
    const notes: string[] = [];
    for (const x of rows) if (x.note) notes.push(`${x.label}: ${x.note}`);
    const saturated = rows.filter((x) => x.loadgenSaturated).map((x) => x.label);
    if (saturated.length) {
      notes.push(
        `load generator at >= 90% of a core for: ${saturated.join(', ')}; these rows may show autocannon's limit rather than the target's${r.plan.workers ? '' : ' (try --workers N on a machine with spare cores)'}`,
      );
    }
    notes.push(...goalNotes((r.goals ?? []).filter((g) => g.payload === p.id)));
    return {
      title: `${p.label}, ${p.connections} connections`,
      columns: ['target', '>req/s (min-max)', '>p50 ms', '>p99 ms (min-max)', '>p99.9 ms', '>errors', '>vs direct', '>vs HAProxy', '>proxy CPU', '>loadgen CPU'],
      rows: rows.map((x) => [
        x.label + (x.loadgenSaturated ? ' (*)' : ''),
        range(x.rps, int),
        ms(x.p50.median),
        range(x.p99, ms),
        ms(x.p999.median),
        int(x.errors),
        ratio(x.vsDirect),
        ratio(x.vsHaproxy),
        pct(x.proxyCpu.median),
        pct(x.loadgenCpu.median),
      ]),
      notes,
    };
  });
}

/**
 * The notes for the issue's targets: one line per target (the ratio of medians, the target,
 * met or missed) and one line with the reference ratios, which have no target.
 */
export function goalNotes(goals: GoalResult[]): string[] {
  const figure = (g: GoalResult) => (g.figure === 'rps' ? 'req/s' : g.figure);
  const value = (g: GoalResult, v: number) => (g.figure === 'rps' ? int(v) : `${ms(v)} ms`);
  const lines = goals
    .filter((g) => g.target !== undefined)
    .map((g) => {
      const head = `target: ${g.ofLabel} ${figure(g)} ${g.op} ${ratio(g.target!)} ${g.againstLabel}'s`;
      if (!Number.isFinite(g.ratio)) return `${head}: not measured (${!Number.isFinite(g.ofValue) ? g.ofLabel : g.againstLabel} did not run)`;
      return `${head}: ${ratio(g.ratio)} (${value(g, g.ofValue)} against ${value(g, g.againstValue)}): ${g.met ? 'met' : 'missed'}`;
    });
  const refs = goals.filter((g) => g.target === undefined && Number.isFinite(g.ratio));
  if (refs.length) {
    lines.push(`for reference (no target): ${refs.map((g) => `${g.ofLabel} ${figure(g)} ${ratio(g.ratio)} ${g.againstLabel}'s`).join(', ')}`);
  }
  return lines;
}

/** One table per strategy case. */
export function strategyTables(r: StrategyResult): Table[] {
  return r.cases.map((c) => ({
    title: `Strategies, ${c.id === 'slow' ? 'one backend 5x slower' : 'one backend flapping'}: ${c.description}`,
    columns: ['strategy', '>req/s', '>p50 ms', '>p99 ms (min-max)', '>p99.9 ms', '>errors', ...c.backends.map((_, i) => `>share ${'ABC'[i]}${i === 2 ? (c.id === 'slow' ? ' (slow)' : ' (flaps)') : ''}`), '>reported load A/B/C', '>shares the reports imply'],
    rows: c.rows.map((x) => [
      x.strategy,
      int(x.rps.median),
      ms(x.p50.median),
      range(x.p99, ms),
      ms(x.p999.median),
      int(x.errors),
      ...x.shares.map((s) => pct(s.median)),
      x.loads.map((l) => (Number.isFinite(l.median) ? l.median.toFixed(2) : '-')).join(' / '),
      // While a backend is down it reports nothing and its last report stays: the implied shares only mean something while all are up.
      x.strategy === 'agent-load' && c.id === 'slow' ? expectedShares(x.loads.map((l) => l.median)) : '',
    ]),
    notes: [
      'shares: requests each backend answered; reported load: the mean utilization each backend sent in the ORCA header of its answers during the window (busy+queued slots over capacity, averaged over 1 s, capped at 0.95; nothing while down). Only agent-load acts on it: it weighs each backend by (1 - load), so its shares should follow the last column, the shares those reports imply.',
    ],
  }));
}

/** The shares agent-load aims at for these utilizations: (1 - load) normalised. */
function expectedShares(loads: number[]): string {
  const w = loads.map((l) => (Number.isFinite(l) ? Math.max(0, 1 - l) : NaN));
  const total = w.reduce((a, b) => a + b, 0);
  if (!(total > 0)) return '-';
  return w.map((x) => pct(x / total)).join(' / ');
}

/** Discovery and scale figures. */
export function scaleTables(d: DiscoveryResult | undefined, s: ScaleResult | undefined): Table[] {
  const tables: Table[] = [];
  if (d) {
    tables.push({
      title: 'Discovery (ZooKeeper): from a znode change to the traffic',
      columns: ['what', '>median', '>min', '>max', '>repetitions'],
      rows: d.skipped
        ? [['skipped', d.skipped, '', '', '']]
        : [
            ['znode created -> first request routed to the new backend (answered)', `${ms(d.addMs!.median)} ms`, `${ms(d.addMs!.min)} ms`, `${ms(d.addMs!.max)} ms`, String(d.rounds.length)],
            ['znode deleted -> last request routed to the removed backend (answered)', `${ms(d.removeMs!.median)} ms`, `${ms(d.removeMs!.min)} ms`, `${ms(d.removeMs!.max)} ms`, String(d.rounds.length)],
          ],
      notes: d.skipped
        ? []
        : [
            `traffic: ${int(d.streamRps ?? NaN)} req/s over ${d.plan.concurrency} keep-alive connections through Drover HTTP; errors during the changes: ${d.rounds.reduce((a, r) => a + r.errors, 0)}`,
          ],
    });
  }
  if (s) {
    tables.push({
      title: 'Memory per 10,000 idle connections (a fresh process per round; Drover after a full GC)',
      columns: ['proxy', '>connections', '>RSS per 10k (min-max)', '>JS heap per 10k (min-max)'],
      rows: s.idle.map((x) => [
        idleLabel(x.label, x.mode === 'tcp' ? '2 sockets each' : 'keep-alive, after one request'),
        int(x.connections),
        range(x.rssPer10k, mb),
        Number.isFinite(x.heapPer10k.median) ? range(x.heapPer10k, mb) : '-',
      ]),
      notes: [...s.idleNotes, ...(s.idleGoal ? [idleGoalNote(s.idleGoal)] : [])],
    });
    const k = s.soak;
    if (k && k.atRef && k.atEnd && k.load) {
      tables.push({
        title: `Soak: Drover HTTP at ${int(k.rate)} req/s for ${fmtDuration(k.durationS)}`,
        columns: ['', '>JS heap', '>RSS'],
        rows: [
          [`at ${fmtDuration(k.atRef.atS)}`, mb(k.atRef.heapUsed), mb(k.atRef.rss)],
          [`at ${fmtDuration(k.atEnd.atS)}`, mb(k.atEnd.heapUsed), mb(k.atEnd.rss)],
          ['growth', `${mb(k.heapGrowth!)} (${pct(k.heapGrowthRatio!)})`, `${mb(k.rssGrowth!)} (${pct(k.rssGrowthRatio!)})`],
        ],
        notes: [
          `verdict: ${k.flat ? 'flat' : 'NOT flat'} (heap at the end within 10% or 2 MB of the reference); heap slope after the reference ${mb(k.heapSlopePerMin ?? NaN)}/min`,
          `load during the soak: ${int(k.load.rps)} req/s, p99 ${ms(k.load.p99)} ms, errors ${int(k.load.errors)}, Drover CPU ${pct(k.load.cpu.drover ?? NaN)}`,
        ],
      });
    } else if (s.soakSkipped) {
      tables.at(-1)!.notes!.push(`soak: ${s.soakSkipped}`);
    }
  }
  return tables;
}

/** "Drover TCP (2 sockets each)"; a label with its own parentheses gets the words inside them. */
function idleLabel(label: string, what: string): string {
  return label.endsWith(')') ? `${label.slice(0, -1)}; ${what})` : `${label} (${what})`;
}

/** The native engine's idle-connection memory against the issue's target. */
function idleGoalNote(g: NonNullable<ScaleResult['idleGoal']>): string {
  return `target: ${g.label} (native engine) RSS <= ${mb(g.goalBytes)} per 10,000 idle keep-alive connections: ${mb(g.rssPer10k)} (${ratio(g.rssPer10k / g.goalBytes)} the target): ${g.met ? 'met' : 'missed'}`;
}

/** "10 min", "45 s" */
export function fmtDuration(s: number): string {
  if (s >= 120) return `${(s / 60).toFixed(s % 60 === 0 ? 0 : 1)} min`;
  return `${Math.round(s)} s`;
}

/** The throughput chart: req/s and p99 per payload, one bar per target. */
export function throughputChart(r: ThroughputResult, machine: MachineInfo, when: string): string {
  const targets = [...new Set(r.rows.map((x) => x.target))];
  const color = new Map(targets.map((t, i) => [t, PALETTE[i % PALETTE.length]!]));
  const panels = (figure: 'rps' | 'p99'): Panel[] =>
    PAYLOADS.map((p) => ({
      title: p.label,
      unit: figure === 'rps' ? 'requests/s (higher is better)' : 'p99 latency, ms (lower is better)',
      bars: r.rows
        .filter((x) => x.payload === p.id)
        .map((x) => ({ label: x.label, color: color.get(x.target)!, value: x[figure], saturated: x.loadgenSaturated })),
    }));
  return chart(
    `Drover benchmark, ${when}: medians of ${r.plan.rounds} interleaved rounds, whiskers min-max`,
    [
      machineLine(machine),
      `backend: ${r.backend}; ${r.plan.measureS} s per measurement after ${r.plan.warmupS} s warm-up; hatched: load generator >= 90% of a core`,
    ],
    [panels('rps'), panels('p99')],
  );
}
