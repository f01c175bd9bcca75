import type { Backend, StrategyFactory } from './types.js';
import { eligible } from './shared/eligible.js';
import { Options } from './shared/options.js';
import { forgetMissing, smoothPick } from './shared/smooth.js';

/**
 * agent-load: smooth weighted round robin over the weights the backends
 * report about themselves (`BackendStateView.report`). A report older than
 * `maxAge` is ignored and the backend falls back to its configured weight, so
 * a dead agent cannot pin a stale weight forever. Slow start scales reported
 * weights too. When every eligible backend
 * reports 0 they share equally: an overloaded fleet still serves.
 * Options: `maxAge` (duration, default 30s).
 */
export const create: StrategyFactory = (env) => {
  const maxAge = new Options(env.options, ['maxAge']).duration('maxAge', 30_000);
  const current = env.keep('smooth-weights', () => new Map<string, number>());
  forgetMissing(current, env.backends);
  const reported = (b: Backend): number => {
    const r = env.state.report(b.id);
    if (!r || env.now() - r.at > maxAge) return env.state.weight(b);
    if (r.weight !== undefined) return r.weight * env.state.ramp(b.id);
    return (env.state.weight(b) * (r.percent ?? 100)) / 100;
  };
  return {
    candidates(ctx) {
      const weights = new Map<string, number>();
      let positive = false;
      for (const b of env.backends) {
        if (!eligible(env, b)) continue;
        const w = reported(b);
        weights.set(b.id, w);
        if (w > 0) positive = true;
      }
      const weightOf = (b: Backend) => {
        const w = weights.get(b.id);
        return w === undefined ? NaN : positive ? w : 1;
      };
      return smoothPick(env.backends, weightOf, current, ctx.limit);
    },
  };
};
