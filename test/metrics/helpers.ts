/** Reading Prometheus exposition text in tests. */
import type { Drover } from '../../src/drover.js';

/** One sample line: `name{labels} value`. */
export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Parses every sample line of an exposition text (comments skipped). */
export function parseSamples(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) throw new Error(`unparsable sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
    samples.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return samples;
}

/** A scrape: every sample, with lookups. */
export class Scrape {
  constructor(
    readonly text: string,
    readonly samples: Sample[],
  ) {}

  /** Samples of `name` whose labels include all of `labels`. */
  all(name: string, labels: Record<string, string> = {}): Sample[] {
    return this.samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  }

  /** The one value of `name` with `labels`; undefined when absent, an error when several match. */
  value(name: string, labels: Record<string, string> = {}): number | undefined {
    const found = this.all(name, labels);
    if (found.length > 1) throw new Error(`${found.length} samples of ${name} match ${JSON.stringify(labels)}`);
    return found[0]?.value;
  }

  /** The sum of every `name` sample with `labels` (0 when none). */
  sum(name: string, labels: Record<string, string> = {}): number {
    return this.all(name, labels).reduce((n, s) => n + s.value, 0);
  }
}

/** Scrapes a Drover's metrics. */
export async function scrape(drover: Drover): Promise<Scrape> {
  const text = await drover.metrics!.text();
  return new Scrape(text, parseSamples(text));
}

/** Scrapes until `ready` holds for a scrape (counts that settle when a socket closes), then returns that scrape. */
export async function scrapeUntil(drover: Drover, ready: (s: Scrape) => boolean, what: string, limitMs = 10_000): Promise<Scrape> {
  const deadline = Date.now() + limitMs;
  for (;;) {
    const s = await scrape(drover);
    if (ready(s)) return s;
    if (Date.now() > deadline) throw new Error(`timed out waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}
