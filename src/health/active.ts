import { EventEmitter } from 'node:events';
import type { Backend } from '../../strategies/index.js';
import type { ServiceBalancer } from '../balancer/balancer.js';
import type { HealthCheckConfig } from '../config/schema.js';
import type { Logger } from '../log.js';
import { httpProbe, tcpProbe, type ProbeResult, type ProbeTarget } from './probe.js';

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

/** The first check of a member: a random point in [0, interval), so a fleet's checks spread out. */
export function firstDelay(interval: number, random: () => number): number {
  return Math.min(interval, Math.max(0, random() * interval));
}

/** The time from one check of a member to the next: interval × [0.9, 1.1], so checks do not fall into lockstep. */
export function jitteredInterval(interval: number, random: () => number): number {
  const r = Math.min(1, Math.max(0, random()));
  return interval * (0.9 + 0.2 * r);
}

/** What the checker holds per member. */
interface Checked {
  readonly target: ProbeTarget;
  /** The state the counting starts from; flipped when `streak` reaches rise or fall. */
  up: boolean;
  /** Consecutive results against `up` (failures while up, passes while down). */
  streak: number;
  timer: NodeJS.Timeout | undefined;
  /** When the waiting timer fires (ms, Date.now), to re-arm it on reconfigure. */
  due: number;
  /** The probe in flight, if any. */
  probe: AbortController | undefined;
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

  private readonly members = new Map<string, Checked>();
  private running = false;

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
    this.running = true;
    this.sync();
  }

  /** Starts timers for new members and stops those of removed ones. */
  sync(): void {
    if (!this.running) return;
    const backends = this.balancer.backends;
    const ids = new Set(backends.map((b) => b.id));
    for (const [id, m] of this.members) if (!ids.has(id)) this.forget(id, m);
    for (const b of backends) if (!this.members.has(b.id)) this.add(b);
  }

  /** New settings (reload); counters and up/down states stay. */
  reconfigure(config: HealthCheckConfig): void {
    const was = this.config;
    this.config = config;
    if (!this.running || config.interval === was.interval) return;
    // A waiting member keeps its turn unless the new interval brings it closer.
    const now = Date.now();
    for (const m of this.members.values()) {
      if (!m.timer) continue;
      const next = jitteredInterval(config.interval, this.random);
      if (m.due - now > next) this.wait(m, next);
    }
  }

  /** Stops every timer and open probe. */
  stop(): void {
    this.running = false;
    for (const [id, m] of this.members) this.forget(id, m);
  }

  /** The ids being checked (tests, admin API). */
  checked(): string[] {
    return [...this.members.keys()];
  }

  private add(b: Backend): void {
    const m: Checked = {
      target: { id: b.id, host: b.host, port: b.port },
      up: !this.balancer.states.isDown(b.id),
      streak: 0,
      timer: undefined,
      due: 0,
      probe: undefined,
    };
    this.members.set(b.id, m);
    this.wait(m, firstDelay(this.config.interval, this.random));
  }

  private forget(id: string, m: Checked): void {
    clearTimeout(m.timer);
    m.timer = undefined;
    m.probe?.abort();
    m.probe = undefined;
    this.members.delete(id);
  }

  private wait(m: Checked, delay: number): void {
    clearTimeout(m.timer);
    m.due = Date.now() + delay;
    m.timer = setTimeout(() => {
      m.timer = undefined;
      this.run(m).catch((err: unknown) => this.log.error('health check failed unexpectedly', { service: this.service, backend: m.target.id, error: err }));
    }, delay);
  }

  /** One probe of one member, then its next turn. Only one probe of a member runs at a time. */
  private async run(m: Checked): Promise<void> {
    if (m.probe || this.members.get(m.target.id) !== m) return;
    const config = this.config;
    const started = Date.now();
    const probe = new AbortController();
    m.probe = probe;
    let result: ProbeResult;
    try {
      result =
        config.type === 'http'
          ? await httpProbe(m.target, config, config.timeout, probe.signal)
          : await tcpProbe(m.target, config.timeout, probe.signal);
    } catch (err) {
      result = { ok: false, reason: err instanceof Error ? err.message : String(err) };
    }
    // Stopped, or the member left while the probe ran: its result goes nowhere.
    if (m.probe !== probe || this.members.get(m.target.id) !== m) return;
    m.probe = undefined;
    this.count(m, result);
    if (this.members.get(m.target.id) !== m) return; // a `check` listener stopped us
    const next = started + jitteredInterval(this.config.interval, this.random);
    this.wait(m, Math.max(0, next - Date.now()));
  }

  /** Counts one result, flips the member when its streak reaches rise or fall, and emits `check`. */
  private count(m: Checked, result: ProbeResult): void {
    const id = m.target.id;
    if (!result.ok && this.log.enabled('debug')) this.log.debug('health check failed', { service: this.service, backend: id, reason: result.reason });
    if (result.ok === m.up) m.streak = 0;
    else if (++m.streak >= (m.up ? this.config.fall : this.config.rise)) {
      const checks = m.streak;
      m.up = result.ok;
      m.streak = 0;
      const reason = result.ok ? `passed ${checks} check${checks === 1 ? '' : 's'} in a row` : result.reason;
      this.log.info('backend health changed', { service: this.service, backend: id, up: m.up, reason });
      try {
        this.onFlip(id, m.up);
      } catch (err) {
        this.log.error('applying a health change failed', { service: this.service, backend: id, up: m.up, error: err });
      }
    }
    const check: CheckResult = {
      service: this.service,
      backend: id,
      ok: result.ok,
      ...(result.reason !== undefined ? { reason: result.reason } : {}),
      up: m.up,
    };
    try {
      this.emit('check', check);
    } catch (err) {
      this.log.error('a check listener failed', { service: this.service, backend: id, error: err });
    }
  }
}
