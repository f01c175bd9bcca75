import { EventEmitter } from 'node:events';
import type { ServiceBalancer } from '../balancer/balancer.js';
import type { HealthCheckConfig } from '../config/schema.js';
import type { Logger } from '../log.js';

/** One probe's result, emitted as `check` after every probe. */
export interface CheckResult {
  readonly service: string;
  readonly backend: string;
  readonly ok: boolean;
  /** Why a probe failed (refused, timeout, status 500, ...). */
  readonly reason?: string;
  /** The backend's state after this result. */
  readonly up: boolean;
}

/**
 * Active health checks of one service's members (TCP connect or HTTP GET),
 * each member on its own jittered timer. A member flips down after `fall`
 * failures in a row and up after `rise` successes in a row; flips go to
 * `onFlip` (default: the balancer's states). Members start from the state
 * the balancer already holds for them, so a reload or a new shared-check
 * leader continues where the last checker stopped.
 */
export class ActiveChecks extends EventEmitter {
  /** Where flips go; shared checks replace it to publish them. */
  onFlip: (id: string, up: boolean) => void;

  constructor(
    readonly service: string,
    private config: HealthCheckConfig,
    private readonly balancer: ServiceBalancer,
    private readonly log: Logger,
    private readonly random: () => number = Math.random,
  ) {
    super();
    this.onFlip = (id, up) => balancer.states.setDown(id, !up);
  }

  /** Starts checking; call sync() after every member change. */
  start(): void {
    void [this.config, this.balancer, this.log, this.random];
  }

  /** Starts timers for new members and stops those of removed ones. */
  sync(): void {}

  /** New settings (reload); counters and up/down states stay. */
  reconfigure(config: HealthCheckConfig): void {
    this.config = config;
  }

  /** Stops every timer and open probe. */
  stop(): void {}
}
