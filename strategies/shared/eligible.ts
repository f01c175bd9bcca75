import type { Backend, StrategyEnv } from '../types.js';

/**
 * Whether a strategy may hand out this backend: usable by its live state and
 * with a positive effective weight (weight 0 means "no new traffic", as in HAProxy).
 */
export function eligible(env: StrategyEnv, backend: Backend): boolean {
  return env.state.usable(backend.id) && env.state.weight(backend) > 0;
}

/**
 * Picks up to `limit` backends with the lowest `score`, lowest first. Ties go
 * to the backend met first when scanning from `offset`, so a caller that
 * rotates `offset` rotates ties instead of favouring list order.
 * O(limit * n): limit is 1 + retries, so this beats a sort.
 */
export function lowest(
  list: readonly Backend[],
  score: (b: Backend) => number,
  limit: number,
  offset: number,
): Backend[] {
  const n = list.length;
  const scores = new Float64Array(n);
  for (let i = 0; i < n; i++) scores[i] = score(list[i]!);
  const out: Backend[] = [];
  const taken = new Uint8Array(n);
  while (out.length < limit) {
    let best = -1;
    for (let k = 0; k < n; k++) {
      const i = (offset + k) % n;
      if (taken[i] || Number.isNaN(scores[i]!)) continue;
      if (best < 0 || scores[i]! < scores[best]!) best = i;
    }
    if (best < 0) break;
    taken[best] = 1;
    out.push(list[best]!);
  }
  return out;
}
