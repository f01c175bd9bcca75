import type { Backend, StrategyFactory } from './types.js';
import { eligible } from './shared/eligible.js';
import { Options } from './shared/options.js';

/**
 * round-robin: hands out eligible backends in turn, ignoring weights. The
 * position is remembered as the last backend id handed out, so a rebuilt
 * snapshot continues after that backend instead of starting over.
 * Options: none.
 */
export const create: StrategyFactory = (env) => {
  new Options(env.options, []);
  const list = env.backends;
  const memory = env.keep('round-robin', () => ({ lastId: undefined as string | undefined }));
  let next = indexAfter(list, memory.lastId);
  return {
    candidates(ctx) {
      const n = list.length;
      const out: Backend[] = [];
      const start = next;
      for (let k = 0; k < n && out.length < ctx.limit; k++) {
        const i = (start + k) % n;
        const b = list[i]!;
        if (!eligible(env, b)) continue;
        if (out.length === 0) {
          next = (i + 1) % n;
          memory.lastId = b.id;
        }
        out.push(b);
      }
      return out;
    },
  };
};

/** Index of the first backend whose id sorts after `id` (the list is sorted by id). */
function indexAfter(list: readonly Backend[], id: string | undefined): number {
  if (id === undefined || list.length === 0) return 0;
  let lo = 0;
  let hi = list.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (list[mid]!.id <= id) lo = mid + 1;
    else hi = mid;
  }
  return lo % list.length;
}
