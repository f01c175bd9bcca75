import type { Backend, StrategyFactory } from './types.js';
import { eligible, lowest } from './shared/eligible.js';
import { Options } from './shared/options.js';

/**
 * response-time: peak-EWMA load with power-of-two choices (Finagle, Linkerd).
 * Load = latency * (active + 1) / weight, where latency is the backend's
 * peak EWMA (decaying toward 0 while idle, so a slow backend is retried).
 * Two random eligible backends are drawn and the lighter wins; random draws
 * keep a fleet of proxies from all piling onto the same "best" backend.
 * A backend with no sample yet is treated as the mean of its sampled peers,
 * so it is neither flooded nor starved.
 * Options: `defaultRtt` (duration, default 1ms) used while no backend has a sample.
 */
export const create: StrategyFactory = (env) => {
  const defaultRtt = new Options(env.options, ['defaultRtt']).duration('defaultRtt', 1);
  return {
    candidates(ctx) {
      const usable = env.backends.filter((b) => eligible(env, b));
      if (usable.length <= 1) return usable;
      const fallback = meanLatency(usable) ?? defaultRtt;
      const load = (b: Backend) =>
        ((env.state.latency(b.id) ?? fallback) * (env.state.active(b.id) + 1)) / env.state.weight(b);
      const i = Math.floor(env.random() * usable.length);
      let j = Math.floor(env.random() * (usable.length - 1));
      if (j >= i) j++;
      const [first, second] = load(usable[j]!) < load(usable[i]!) ? [usable[j]!, usable[i]!] : [usable[i]!, usable[j]!];
      if (ctx.limit === 1) return [first];
      const rest = lowest(usable, (b) => (b === first || b === second ? NaN : load(b)), ctx.limit - 2, 0);
      return [first, second, ...rest];
    },
  };

  function meanLatency(list: readonly Backend[]): number | undefined {
    let sum = 0;
    let count = 0;
    for (const b of list) {
      const l = env.state.latency(b.id);
      if (l !== undefined) {
        sum += l;
        count++;
      }
    }
    return count ? sum / count : undefined;
  }
};
