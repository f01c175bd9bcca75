import type { StrategyFactory } from './types.js';
import { eligible } from './shared/eligible.js';
import { Options } from './shared/options.js';
import { forgetMissing, smoothPick } from './shared/smooth.js';

/**
 * weighted-round-robin: nginx's smooth weighted round robin over effective
 * weights. Weights {5,1,1} give `a a b a c a a`. Current values are kept per
 * backend id across rebuilds. Options: none.
 */
export const create: StrategyFactory = (env) => {
  new Options(env.options, []);
  const current = env.keep('smooth-weights', () => new Map<string, number>());
  forgetMissing(current, env.backends);
  const weightOf = (b: (typeof env.backends)[number]) => (eligible(env, b) ? env.state.weight(b) : NaN);
  return {
    candidates: (ctx) => smoothPick(env.backends, weightOf, current, ctx.limit),
  };
};
