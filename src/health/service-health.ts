import { hostname } from 'node:os';
import type { ServiceBalancer } from '../balancer/balancer.js';
import type { ServiceConfig } from '../config/schema.js';
import type { ZooKeeperConnection } from '../discovery/zk.js';
import type { Logger } from '../log.js';
import { ActiveChecks } from './active.js';
import { AgentChecks, clearAgentState } from './agent.js';
import { SharedChecks } from './shared.js';

/** This process's name in shared-check elections and check requests. */
export const INSTANCE = `${hostname()}:${process.pid}`;

/**
 * Everything that watches one service's members besides discovery: active
 * checks (local or shared through ZooKeeper) and agent checks. It follows
 * member changes (sync) and reloads (reconfigure) without losing what the
 * checks have learnt, since that lives in the balancer's states.
 */
export class ServiceHealth {
  private checks: ActiveChecks | SharedChecks | undefined;
  private agent: AgentChecks | undefined;

  constructor(
    private config: ServiceConfig,
    private readonly balancer: ServiceBalancer,
    private readonly log: Logger,
    /** The Drover's ZooKeeper connection as it is now: a reload may open one later. */
    private readonly zk: () => ZooKeeperConnection | undefined,
    private readonly random: () => number = Math.random,
  ) {}

  /** The active or shared checker, if any (tests, admin API). */
  get checker(): ActiveChecks | SharedChecks | undefined {
    return this.checks;
  }

  /** The agent-check client, if any. */
  get agentChecks(): AgentChecks | undefined {
    return this.agent;
  }

  /** Starts what the config asks for. */
  start(): void {
    this.reconfigure(this.config);
  }

  /** Member change: new members get checked, removed ones forgotten. */
  sync(): void {
    this.checks?.sync();
    this.agent?.sync();
  }

  /**
   * Applies a reloaded service config: a checker whose kind is unchanged is
   * reconfigured in place, one whose kind changed (local, shared, none) is
   * replaced. Up/down states stay in the balancer either way.
   */
  reconfigure(config: ServiceConfig): void {
    this.config = config;
    const hc = config.healthCheck;
    const want = !hc ? undefined : hc.shared ? SharedChecks : ActiveChecks;
    if (this.checks && (!want || !(this.checks instanceof want))) {
      void this.checks.stop();
      this.checks = undefined;
      if (!hc) for (const b of this.balancer.backends) this.balancer.states.setDown(b.id, false);
    }
    if (hc && this.checks) this.checks.reconfigure(hc);
    else if (hc) {
      const zk = this.zk();
      this.checks =
        hc.shared && zk
          ? new SharedChecks(config.name, hc, this.balancer, zk, this.log, INSTANCE)
          : new ActiveChecks(config.name, hc, this.balancer, this.log, this.random);
      this.checks.start();
    }
    if (this.agent && !config.agent) {
      this.agent.stop();
      this.agent = undefined;
      // As with checks above: what the agents said no longer holds once nobody asks them.
      clearAgentState(this.balancer.states, this.balancer.backends.map((b) => b.id));
    } else if (this.agent && config.agent) this.agent.reconfigure(config.agent);
    else if (config.agent) {
      this.agent = new AgentChecks(config.name, config.agent, this.balancer, this.log, this.random);
      this.agent.start();
    }
  }

  /** Stops every check. */
  async stop(): Promise<void> {
    this.agent?.stop();
    await this.checks?.stop();
  }
}
