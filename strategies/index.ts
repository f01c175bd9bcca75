/**
 * The only list of strategy names. `src/` reaches strategies through this
 * file alone; adding a strategy means one file in this folder and one line here.
 */
import type { StrategyFactory } from './types.js';
import { create as agentLoad } from './agent-load.js';
import { create as ipHash } from './ip-hash.js';
import { create as leastConnections } from './least-connections.js';
import { create as responseTime } from './response-time.js';
import { create as roundRobin } from './round-robin.js';
import { create as weightedRoundRobin } from './weighted-round-robin.js';

export * from './types.js';
export { parseDuration } from './shared/options.js';

/** Built-in strategies by the name used in `strategy:`. */
export const strategies: Readonly<Record<string, StrategyFactory>> = Object.freeze({
  'round-robin': roundRobin,
  'weighted-round-robin': weightedRoundRobin,
  'ip-hash': ipHash,
  'least-connections': leastConnections,
  'response-time': responseTime,
  'agent-load': agentLoad,
});

/** The default strategy when a service names none. */
export const defaultStrategy = 'round-robin';
