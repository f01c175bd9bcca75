import { EventEmitter } from 'node:events';
import type { ServiceBalancer } from '../balancer/balancer.js';
import type { HealthCheckConfig } from '../config/schema.js';
import type { ZooKeeperConnection } from '../discovery/zk.js';
import type { Logger } from '../log.js';

/**
 * Shared health checks of one service (`healthCheck.shared`): the Drover
 * instances on one ZooKeeper elect a checker under
 * `/drover/election/<service>`; the leader runs ActiveChecks and publishes
 * each member's state under `/drover/health/<service>`; followers apply
 * what it publishes.
 */
export class SharedChecks extends EventEmitter {
  constructor(
    readonly service: string,
    private config: HealthCheckConfig,
    private readonly balancer: ServiceBalancer,
    private readonly zk: ZooKeeperConnection,
    private readonly log: Logger,
    /** This instance's name in the election (host:pid by default). */
    readonly instance: string,
  ) {
    super();
  }

  /** Joins the election. */
  start(): void {
    void [this.config, this.balancer, this.zk, this.log];
  }

  /** Member change: the leader checks the new members. */
  sync(): void {}

  /** New settings (reload). */
  reconfigure(config: HealthCheckConfig): void {
    this.config = config;
  }

  /** Leaves the election (deleting its candidate node) and stops checking. */
  async stop(): Promise<void> {}
}
