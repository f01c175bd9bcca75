import type { Backend, BackendStateView, LoadReport } from '../../strategies/index.js';
import type { OutlierConfig } from '../config/schema.js';

/** Peak-EWMA time constant: how fast latency forgets (design.md: about 10 s). */
export const EWMA_TAU_MS = 10_000;

/** Slow start begins at this share of the full weight. */
export const SLOW_START_FLOOR = 0.1;

/** Service-wide settings of live state; replaced as a whole on reload. */
export interface StateSettings {
  /** Ramp length in ms for new and recovered backends; 0 is off. */
  readonly slowStart: number;
  /** How long a drained or removed backend's open connections may stay. */
  readonly drainTimeout: number;
  /** Passive ejection; absent is off. */
  readonly outlier?: OutlierConfig;
  /** Percent: below this share of healthy members, health is ignored (panic); 0 is off. */
  readonly panicThreshold: number;
  /** New members start down until their checks pass (`startUnhealthy`). */
  readonly startDown: boolean;
}

/** Why a backend is out of rotation, as the admin API and logs show it. */
export type Drain = 'api' | 'registry' | 'agent' | 'maint' | 'removed';

/** What BackendStates reports as it happens: health and ejection changes, forced closes. */
export interface StateEvent {
  readonly event: 'down' | 'up' | 'ejected' | 'ejection-refused' | 'drain-timeout' | 'panic' | 'calm';
  readonly backend?: string;
  readonly [field: string]: unknown;
}

/** One backend's live state as plain data (admin API, status page). */
export interface BackendSnapshot {
  readonly id: string;
  /** `draining` (held), `down` (unhealthy), `panic` (unhealthy but used: panic mode) or `up`. */
  readonly state: 'up' | 'down' | 'draining' | 'panic';
  readonly usable: boolean;
  readonly configuredWeight: number;
  readonly weight: number;
  readonly ramp: number;
  readonly active: number;
  /** Connections or requests started since Drover started (or the backend came back). */
  readonly total: number;
  readonly latencyMs: number | undefined;
  readonly report: LoadReport | undefined;
  readonly checksDown: boolean;
  readonly agentDown: boolean;
  readonly maxConn: number | undefined;
  /** The member's own `maxConnections`. */
  readonly maxConnections: number | undefined;
  readonly drains: readonly Drain[];
  readonly ejectedUntil: number | undefined;
  readonly ejections: number;
}

interface Live {
  active: number;
  total: number;
  /** Closes one open connection or request; called when a drain times out. */
  closers: Set<() => void>;
  /** Peak-EWMA latency in ms at `costAt`; undefined until the first sample. */
  cost: number | undefined;
  costAt: number;
  report: LoadReport | undefined;
  /** Replaces the configured weight while set (API, agent `weight:N`). */
  weight: number | undefined;
  /** Administrative reasons for no new traffic (drain sources, maint, removal). */
  drains: Set<Drain>;
  drainTimer: NodeJS.Timeout | undefined;
  /** Failed active checks (local or from the shared checker). */
  down: boolean;
  /** The agent said `down` / `fail` / `stopped`. */
  agentDown: boolean;
  /** The agent's `maxconn:N`; undefined is no limit. */
  maxConn: number | undefined;
  /** The member's `maxConnections`; undefined is no limit. */
  memberLimit: number | undefined;
  /** Passive ejection: 0 when not ejected (reset lazily once it ends). */
  failures: number;
  ejections: number;
  ejectedUntil: number;
  /** When the last ejection ended, for forgiving repeat offenders. */
  ejectionEnded: number;
  /** When the backend last became usable, for slow start; 0 is "always was". */
  since: number;
}

/**
 * Live per-backend state of one service, keyed by backend id. It is not part
 * of a snapshot: a rebuilt strategy reads the same counts, latencies and
 * flags, so registry changes and reloads do not reset least-connections,
 * response-time or health. `now` is injectable for tests (default Date.now);
 * drain deadlines use real timers.
 *
 * A backend is usable when nothing administrative holds it (drain, maint,
 * removal) and it is healthy (no failed checks, not ejected, agent not
 * `down`, under the agent's maxconn). In panic (fewer healthy members than
 * `panicThreshold`) health is ignored, as in Envoy; administrative holds never are.
 */
export class BackendStates implements BackendStateView {
  private readonly live = new Map<string, Live>();
  private settings: StateSettings = { slowStart: 0, drainTimeout: 30_000, panicThreshold: 0, startDown: false };
  private members: readonly Backend[] = [];
  private memberIds: ReadonlySet<string> | undefined;
  private panic = false;
  /** Recompute panic when a health flag changed or an ejection ends. */
  private panicDirty = false;
  private nextEjectionEnd = Infinity;

  /** Receives every StateEvent; defaults to nothing. */
  onEvent: (e: StateEvent) => void = () => {};

  constructor(private readonly now: () => number = Date.now) {}

  /** Replaces the settings (start, reload); live values stay. */
  configure(settings: StateSettings): void {
    this.settings = settings;
    this.panicDirty = true;
  }

  /** The current snapshot's backends, for panic and ejection shares. Called by the balancer. */
  setMembers(backends: readonly Backend[]): void {
    this.members = backends;
    this.memberIds = new Set(backends.map((b) => b.id));
    this.healthMoved();
  }

  usable(id: string): boolean {
    const s = this.live.get(id);
    if (!s) return true;
    if (s.drains.size > 0) return false;
    if (s.active >= limitOf(s)) return false;
    return this.healthy(s) || this.inPanic();
  }

  /**
   * Whether `id` would be usable but for its connection limit (a member's
   * `maxConnections`, the agent's `maxconn`): work for it may wait for a
   * slot rather than be refused.
   */
  full(id: string): boolean {
    const s = this.live.get(id);
    if (!s || s.drains.size > 0 || s.active < limitOf(s)) return false;
    return this.healthy(s) || this.inPanic();
  }

  active(id: string): number {
    return this.live.get(id)?.active ?? 0;
  }

  weight(backend: Backend): number {
    const s = this.live.get(backend.id);
    const w = s?.weight ?? backend.weight;
    return s ? w * this.rampOf(s) : w;
  }

  latency(id: string): number | undefined {
    const s = this.live.get(id);
    if (!s || s.cost === undefined) return undefined;
    return s.cost * Math.exp(-Math.max(0, this.now() - s.costAt) / EWMA_TAU_MS);
  }

  report(id: string): LoadReport | undefined {
    return this.live.get(id)?.report;
  }

  ramp(id: string): number {
    const s = this.live.get(id);
    return s ? this.rampOf(s) : 1;
  }

  /**
   * Counts a connection or request as started on `id`. `close`, when given,
   * ends it if the backend's drain times out. Pair with release().
   */
  acquire(id: string, close?: () => void): void {
    const s = this.entry(id);
    s.active++;
    s.total++;
    if (close) s.closers.add(close);
    // A pick from a candidate list made just before the backend left: it
    // drains like the backend's other connections, and is then forgotten.
    if (this.memberIds && !this.memberIds.has(id)) this.hold(id, 'removed', true);
  }

  /** Counts a connection or request on `id` as finished; pass the same `close` as to acquire(). */
  release(id: string, close?: () => void): void {
    const s = this.live.get(id);
    if (!s) return;
    if (s.active > 0) s.active--;
    if (close) s.closers.delete(close);
    if (s.active === 0 && s.drains.has('removed')) this.forget(id, s);
  }

  /**
   * Feeds one latency sample (ms): a sample above the current estimate
   * replaces it (the peak), a lower one is blended in by elapsed time.
   */
  sample(id: string, rttMs: number): void {
    const s = this.entry(id);
    const now = this.now();
    if (s.cost === undefined) s.cost = rttMs;
    else {
      const w = Math.exp(-Math.max(0, now - s.costAt) / EWMA_TAU_MS);
      const decayed = s.cost * w;
      s.cost = rttMs > decayed ? rttMs : decayed + rttMs * (1 - w);
    }
    s.costAt = now;
  }

  /** Stores a backend's own load report, stamped with the current time. */
  setReport(id: string, report: Omit<LoadReport, 'at'>): void {
    this.entry(id).report = { ...report, at: this.now() };
  }

  /** Overrides a backend's configured weight; undefined restores it. */
  setWeight(id: string, weight: number | undefined): void {
    this.entry(id).weight = weight;
  }

  /** Drain through the API: no new connections; open ones close after drainTimeout. */
  setDraining(id: string, draining: boolean): void {
    this.hold(id, 'api', draining);
  }

  /** The registry's drain flag; kept apart from the API's so one does not undo the other. */
  setRegistryDrain(id: string, draining: boolean): void {
    if (draining || this.live.has(id)) this.hold(id, 'registry', draining);
  }

  /** The agent's `drain` (true) or `ready` (false). */
  setAgentDrain(id: string, draining: boolean): void {
    this.hold(id, 'agent', draining);
  }

  /** The agent's `maint` (true) or `ready` (false). */
  setMaintenance(id: string, maint: boolean): void {
    this.hold(id, 'maint', maint);
  }

  /** The agent's `maxconn:N`; undefined lifts the limit. */
  setMaxConn(id: string, maxConn: number | undefined): void {
    this.entry(id).maxConn = maxConn;
  }

  /** The member's own `maxConnections` (config or registry); undefined is no limit. Called by the balancer. */
  setMemberLimit(id: string, limit: number | undefined): void {
    if (limit !== undefined || this.live.has(id)) this.entry(id).memberLimit = limit;
  }

  /** Active check result: a down backend gets no new connections (unless in panic). */
  setDown(id: string, down: boolean): void {
    this.healthChange(id, (s) => (s.down = down), down ? 'down' : 'up', 'check');
  }

  /** The agent's `down` (true) or `up` (false). */
  setAgentDown(id: string, down: boolean): void {
    this.healthChange(id, (s) => (s.agentDown = down), down ? 'down' : 'up', 'agent');
  }

  /** Whether the active checks hold `id` down. */
  isDown(id: string): boolean {
    return this.live.get(id)?.down ?? false;
  }

  /** Why `id` takes no new traffic, if anything administrative holds it. */
  drains(id: string): Drain[] {
    return [...(this.live.get(id)?.drains ?? [])];
  }

  /** When `id`'s current ejection ends (ms, the injected clock), or undefined. */
  ejectedUntil(id: string): number | undefined {
    const s = this.live.get(id);
    return s && s.ejectedUntil > this.now() ? s.ejectedUntil : undefined;
  }

  /**
   * Passive health: one connection or request outcome. `consecutiveFailures`
   * failures in a row eject the backend for baseEjection times the number of
   * recent ejections (one fewer for each baseEjection it stayed in), up to
   * maxEjection, unless that would eject more than maxEjectedPercent of the
   * members. Any success resets the count.
   */
  outcome(id: string, ok: boolean): void {
    const o = this.settings.outlier;
    if (!o || (this.memberIds && !this.memberIds.has(id))) return;
    const s = this.live.get(id) ?? (ok ? undefined : this.entry(id));
    if (!s) return;
    const now = this.now();
    if (ok) {
      s.failures = 0;
      return;
    }
    if (s.ejectedUntil > now) return;
    if (++s.failures < o.consecutiveFailures) return;
    s.failures = 0;
    const ejected = this.members.filter((b) => b.id !== id && (this.live.get(b.id)?.ejectedUntil ?? 0) > now).length;
    const share = (100 * (ejected + 1)) / Math.max(1, this.members.length);
    if (share > o.maxEjectedPercent) {
      this.onEvent({ event: 'ejection-refused', backend: id, ejected, members: this.members.length, maxEjectedPercent: o.maxEjectedPercent });
      return;
    }
    const quiet = s.ejectionEnded > 0 ? Math.floor((now - s.ejectionEnded) / o.baseEjection) : 0;
    // Counted no higher than maxEjection needs, so forgiveness starts at once.
    s.ejections = Math.min(Math.max(0, s.ejections - quiet) + 1, Math.ceil(o.maxEjection / o.baseEjection));
    const duration = Math.min(o.baseEjection * s.ejections, o.maxEjection);
    s.ejectedUntil = now + duration;
    s.ejectionEnded = s.ejectedUntil;
    s.since = s.ejectedUntil;
    this.nextEjectionEnd = Math.min(this.nextEjectionEnd, s.ejectedUntil);
    this.onEvent({ event: 'ejected', backend: id, for: duration, ejections: s.ejections });
    this.healthMoved();
  }

  /**
   * Marks a backend that left (true) or came back to (false) the snapshot.
   * A removed backend keeps its open connections until drainTimeout.
   */
  setRemoved(id: string, removed: boolean): void {
    const s = this.live.get(id);
    if (removed && s && !s.active) return this.forget(id, s);
    if (removed && !s) return;
    if (removed || this.live.has(id)) this.hold(id, 'removed', removed);
  }

  /**
   * A backend new to the snapshot: it starts down when checks say
   * `startUnhealthy`, and ramps up with slow start unless it came with the
   * first listing (ramping every member alike would change nothing).
   */
  arrived(id: string, first: boolean): void {
    if (this.settings.startDown) this.entry(id).down = true;
    if (!first && this.settings.slowStart > 0) this.entry(id).since = this.now();
    this.panicDirty = true;
  }

  /**
   * Everything known about one backend, as plain data for the admin API and
   * the status page. `weight` is the effective weight (overrides, slow start).
   */
  snapshot(backend: Backend): BackendSnapshot {
    const s = this.live.get(backend.id);
    const now = this.now();
    const healthy = !s || this.healthy(s);
    const drains = s ? [...s.drains] : [];
    return {
      id: backend.id,
      state: drains.length > 0 ? 'draining' : healthy ? 'up' : this.inPanic() ? 'panic' : 'down',
      usable: this.usable(backend.id),
      configuredWeight: backend.weight,
      weight: this.weight(backend),
      ramp: this.ramp(backend.id),
      active: s?.active ?? 0,
      total: s?.total ?? 0,
      latencyMs: this.latency(backend.id),
      report: s?.report,
      checksDown: s?.down ?? false,
      agentDown: s?.agentDown ?? false,
      maxConn: s?.maxConn,
      maxConnections: s?.memberLimit,
      drains,
      ejectedUntil: s && s.ejectedUntil > now ? s.ejectedUntil : undefined,
      ejections: s?.ejections ?? 0,
    };
  }

  /** Ids that have live state (for tests and the admin API). */
  ids(): string[] {
    return [...this.live.keys()];
  }

  /** Whether health is being ignored because too few members are healthy. */
  inPanic(): boolean {
    if (this.settings.panicThreshold <= 0) return false;
    if (this.panicDirty || this.now() >= this.nextEjectionEnd) this.computePanic();
    return this.panic;
  }

  /** Cancels drain timers (stop). */
  close(): void {
    for (const s of this.live.values()) clearTimeout(s.drainTimer);
  }

  private computePanic(): void {
    const now = this.now();
    this.panicDirty = false;
    this.nextEjectionEnd = Infinity;
    let healthy = 0;
    for (const b of this.members) {
      const s = this.live.get(b.id);
      if (!s || this.healthy(s)) healthy++;
      if (s && s.ejectedUntil > now) this.nextEjectionEnd = Math.min(this.nextEjectionEnd, s.ejectedUntil);
    }
    const panic = this.members.length > 0 && (100 * healthy) / this.members.length < this.settings.panicThreshold;
    if (panic !== this.panic) {
      this.panic = panic;
      this.onEvent({ event: panic ? 'panic' : 'calm', healthy, members: this.members.length, panicThreshold: this.settings.panicThreshold });
    }
  }

  private healthy(s: Live): boolean {
    if (s.down || s.agentDown) return false;
    // Reads the clock only while a backend is ejected: this runs per backend per pick.
    if (s.ejectedUntil !== 0 && s.ejectedUntil <= this.now()) s.ejectedUntil = 0;
    return s.ejectedUntil === 0;
  }

  private rampOf(s: Live): number {
    const { slowStart } = this.settings;
    if (slowStart <= 0 || s.since === 0) return 1;
    const elapsed = this.now() - s.since;
    if (elapsed >= slowStart) {
      s.since = 0;
      return 1;
    }
    return SLOW_START_FLOOR + ((1 - SLOW_START_FLOOR) * Math.max(0, elapsed)) / slowStart;
  }

  private healthChange(id: string, change: (s: Live) => unknown, event: 'up' | 'down', source: string): void {
    // "Up" for a backend without state changes nothing, and must not create
    // state for a member that already left.
    if (event === 'up' && !this.live.has(id)) return;
    const s = this.entry(id);
    const was = this.healthy(s);
    change(s);
    const is = this.healthy(s);
    if (was === is) return;
    if (is && this.settings.slowStart > 0) s.since = this.now();
    this.onEvent({ event, backend: id, source });
    this.healthMoved();
  }

  /** Health changed: panic is worked out now, so its event comes when it happens, not at the next pick. */
  private healthMoved(): void {
    this.panicDirty = true;
    if (this.settings.panicThreshold > 0) this.computePanic();
  }

  /** Adds or lifts one administrative hold; the first hold starts the drain deadline, the last lift ends it. */
  private hold(id: string, why: Drain, on: boolean): void {
    const s = this.entry(id);
    const before = s.drains.size;
    if (on) s.drains.add(why);
    else s.drains.delete(why);
    if (before === 0 && s.drains.size > 0) {
      s.drainTimer = setTimeout(() => this.drainTimeout(id, s), this.settings.drainTimeout);
      s.drainTimer.unref();
    } else if (before > 0 && s.drains.size === 0) {
      clearTimeout(s.drainTimer);
      s.drainTimer = undefined;
      if (this.settings.slowStart > 0) s.since = this.now();
    }
  }

  private forget(id: string, s: Live): void {
    clearTimeout(s.drainTimer);
    this.live.delete(id);
  }

  private drainTimeout(id: string, s: Live): void {
    s.drainTimer = undefined;
    if (s.closers.size > 0) this.onEvent({ event: 'drain-timeout', backend: id, connections: s.closers.size, reasons: [...s.drains] });
    for (const close of [...s.closers]) close();
  }

  private entry(id: string): Live {
    let s = this.live.get(id);
    if (!s) {
      s = {
        active: 0,
        total: 0,
        closers: new Set(),
        cost: undefined,
        costAt: 0,
        report: undefined,
        weight: undefined,
        drains: new Set(),
        drainTimer: undefined,
        down: false,
        agentDown: false,
        maxConn: undefined,
        memberLimit: undefined,
        failures: 0,
        ejections: 0,
        ejectedUntil: 0,
        ejectionEnded: 0,
        since: 0,
      };
      this.live.set(id, s);
    }
    return s;
  }
}

/** The tighter of a backend's two connection limits; Infinity when it has none. */
function limitOf(s: Live): number {
  return Math.min(s.maxConn ?? Infinity, s.memberLimit ?? Infinity);
}
