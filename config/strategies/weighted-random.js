// An example custom strategy: weighted random choice.
// Load it with   strategy: { module: ./strategies/weighted-random.js, options: { skew: 1 } }
// (paths are relative to the config file). A strategy module exports one
// factory, `create(env)`, returning `{ candidates(ctx) }`; see the README.

/** @typedef {import('drover').StrategyEnv} StrategyEnv */
/** @typedef {import('drover').Backend} Backend */

/**
 * @param {StrategyEnv} env
 */
export function create(env) {
  // Validate options when built: Drover builds the strategy once at config
  // load, so a bad option fails `drover check` with its file:line:column.
  for (const key of Object.keys(env.options)) {
    if (key !== 'skew') throw Object.assign(new Error(`${key}: unknown option (known options: skew)`), { path: key });
  }
  const skew = env.options.skew ?? 1;
  if (typeof skew !== 'number' || !(skew > 0)) throw new Error('skew: expected a number above 0');

  return {
    /** @param {{ clientAddress?: string, limit: number }} ctx */
    candidates(ctx) {
      // Only usable backends with a positive weight may be returned.
      /** @type {Backend[]} */
      const pool = env.backends.filter((b) => env.state.usable(b.id) && env.state.weight(b) > 0);
      /** @type {Backend[]} */
      const out = [];
      while (out.length < ctx.limit && pool.length > 0) {
        const weights = pool.map((b) => env.state.weight(b) ** skew);
        let r = env.random() * weights.reduce((a, b) => a + b, 0);
        let i = 0;
        while (i < pool.length - 1 && r >= weights[i]) r -= weights[i++];
        out.push(...pool.splice(i, 1));
      }
      return out;
    },
  };
}
