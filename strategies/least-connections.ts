import type { StrategyFactory } from './types.js';
import { eligible, lowest } from './shared/eligible.js';
import { Options } from './shared/options.js';

/**
 * least-connections: the backend with the lowest (active + 1) / weight wins,
 * as HAProxy's weighted least-connections. Ties rotate (the scan starts one
 * place further each pick), so a burst does not all land on the first
 * backend. Active counts live in backend state and survive rebuilds.
 * Options: none.
 */
export const create: StrategyFactory = (env) => {
  new Options(env.options, []);
  const memory = env.keep('least-connections', () => ({ turn: 0 }));
  const score = (b: (typeof env.backends)[number]) =>
    eligible(env, b) ? (env.state.active(b.id) + 1) / env.state.weight(b) : NaN;
  return {
    candidates(ctx) {
      const n = env.backends.length;
      if (n === 0) return [];
      memory.turn = (memory.turn + 1) % n;
      return lowest(env.backends, score, ctx.limit, memory.turn);
    },
  };
};
