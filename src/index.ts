/**
 * Drover as a library: start a proxy from a config, or use the balancer and
 * strategies on their own. The `drover` command is built on these exports.
 */
export { Drover, type DroverOptions, type ReloadResult } from './drover.js';
export type { AdminServer } from './admin/server.js';
export type {
  BackendDoc,
  ErrorDoc,
  HealthCheckDoc,
  HealthDoc,
  ListenerDoc,
  ListenersDoc,
  ReadyDoc,
  ReportDoc,
  ServiceDoc,
  ServicesDoc,
} from './admin/api.js';
export { loadConfig, parseConfig } from './config/load.js';
export type { DroverConfig, ListenerConfig, Member, ServiceConfig, StrategyConfig } from './config/schema.js';
export { ServiceBalancer, type BalancerClock } from './balancer/balancer.js';
export { BackendStates } from './balancer/state.js';
export { Logger } from './log.js';
export {
  register,
  RegisterError,
  REGISTRATION_FORMATS,
  type Registration,
  type RegisterOptions,
  type RegisterZooKeeperOptions,
  type RegistrationFormat,
} from './registry/register.js';
export * from './errors.js';
export { strategies, defaultStrategy } from '../strategies/index.js';
export type * from '../strategies/types.js';
export { StrategyOptionsError } from '../strategies/types.js';
