import { EventEmitter } from 'node:events';
import type { ServiceBalancer } from '../balancer/balancer.js';
import type { BackendStates } from '../balancer/state.js';
import type { AgentConfig } from '../config/schema.js';
import type { Logger } from '../log.js';

/** What one agent line said; words it did not say are absent (their state stays). */
export interface AgentReply {
  readonly percent?: number;
  readonly weight?: number;
  readonly maxConn?: number;
  readonly admin?: 'ready' | 'drain' | 'maint';
  readonly op?: 'up' | 'down';
  readonly reason?: string;
}

/** Parses one agent-check reply line (HAProxy's words); an Error says what is wrong. */
export function parseAgentReply(line: string): AgentReply | Error {
  return new Error(`not implemented: ${line}`);
}

/** Applies a reply to a backend's live state. */
export function applyAgentReply(states: BackendStates, id: string, reply: AgentReply): void {
  void states;
  void id;
  void reply;
}

/**
 * HAProxy's agent-check client for one service: every `interval` (jittered)
 * it connects to each member's agent port, sends `send`, reads one line and
 * applies it. An unreachable agent changes nothing. Emits `reply`
 * ({service, backend, reply} or {service, backend, error}) after each try.
 */
export class AgentChecks extends EventEmitter {
  constructor(
    readonly service: string,
    private config: AgentConfig,
    private readonly balancer: ServiceBalancer,
    private readonly log: Logger,
    private readonly random: () => number = Math.random,
  ) {
    super();
  }

  /** Starts polling; call sync() after every member change. */
  start(): void {
    void [this.config, this.balancer, this.log, this.random];
  }

  /** Starts polling new members and stops removed ones. */
  sync(): void {}

  /** New settings (reload). */
  reconfigure(config: AgentConfig): void {
    this.config = config;
  }

  /** Stops every timer and open connection. */
  stop(): void {}
}
