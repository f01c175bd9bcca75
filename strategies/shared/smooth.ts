import type { Backend } from '../types.js';
import { lowest } from './eligible.js';

/**
 * One pick of nginx's smooth weighted round robin: every eligible backend adds
 * its weight to its current value; the largest wins and gives back the total.
 * Weights {5,1,1} give `a a b a c a a`: interleaved, never in bursts.
 * `current` is keyed by backend id so it survives snapshot rebuilds.
 * `weightOf` returns NaN or <= 0 for a backend that must not be picked.
 * Returns the winner first, then (for retries) the others by current value.
 */
export function smoothPick(
  list: readonly Backend[],
  weightOf: (b: Backend) => number,
  current: Map<string, number>,
  limit: number,
): Backend[] {
  let total = 0;
  let best: Backend | undefined;
  let bestValue = -Infinity;
  for (const b of list) {
    const w = weightOf(b);
    if (!(w > 0)) continue;
    const value = (current.get(b.id) ?? 0) + w;
    current.set(b.id, value);
    total += w;
    if (value > bestValue) {
      best = b;
      bestValue = value;
    }
  }
  if (!best) return [];
  current.set(best.id, bestValue - total);
  if (limit === 1) return [best];
  const winner = best;
  const rest = lowest(
    list,
    (b) => (b === winner || !(weightOf(b) > 0) ? NaN : -(current.get(b.id) ?? 0)),
    limit - 1,
    0,
  );
  return [winner, ...rest];
}

/** Drops remembered values of backends that left, so memory follows the snapshot. */
export function forgetMissing(current: Map<string, number>, list: readonly Backend[]): void {
  const ids = new Set(list.map((b) => b.id));
  for (const id of current.keys()) if (!ids.has(id)) current.delete(id);
}
