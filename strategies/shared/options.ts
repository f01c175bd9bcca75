import { StrategyOptionsError } from '../types.js';

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** The longest duration a Node timer can wait (about 24.8 days); longer ones fire at once. */
export const MAX_DURATION_MS = 2 ** 31 - 1;

/**
 * Parses a duration such as `500ms`, `2s`, `1.5m` or `1h` into whole
 * milliseconds, at most MAX_DURATION_MS. Returns undefined for anything else:
 * bare numbers are refused on purpose, because "30" is seconds to one reader
 * and milliseconds to another.
 */
export function parseDuration(text: unknown): number | undefined {
  if (typeof text !== 'string') return undefined;
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(text.trim());
  if (!m) return undefined;
  const ms = Math.round(Number(m[1]) * UNITS[m[2]!]!);
  return ms <= MAX_DURATION_MS ? ms : undefined;
}

/**
 * Typed access to a strategy's `options:` map. Unknown keys are refused at
 * construction, so a typo in the YAML is an error and not a silent default.
 */
export class Options {
  constructor(
    private readonly options: Readonly<Record<string, unknown>>,
    known: readonly string[],
  ) {
    for (const key of Object.keys(options)) {
      if (!known.includes(key)) {
        const hint = known.length ? `known options: ${known.join(', ')}` : 'this strategy takes no options';
        throw new StrategyOptionsError(key, `unknown option (${hint})`);
      }
    }
  }

  /** A duration option in milliseconds; `fallback` when absent. */
  duration(key: string, fallback: number): number {
    const raw = this.options[key];
    if (raw === undefined) return fallback;
    const ms = parseDuration(raw);
    if (ms === undefined) throw new StrategyOptionsError(key, 'expected a duration like 500ms, 2s or 1m, at most 596h');
    return ms;
  }

  /** A number option within [min, max]; `fallback` when absent. */
  number(key: string, fallback: number, min: number, max: number): number {
    const raw = this.options[key];
    if (raw === undefined) return fallback;
    if (typeof raw !== 'number' || !Number.isFinite(raw) || raw < min || raw > max) {
      throw new StrategyOptionsError(key, `expected a number from ${min} to ${max}`);
    }
    return raw;
  }
}
