import type { Backend, BackendStateView, LoadReport } from '../../strategies/index.js';

/** Peak-EWMA time constant: how fast latency forgets (design.md: about 10 s). */
export const EWMA_TAU_MS = 10_000;

interface Live {
  active: number;
  /** Peak-EWMA latency in ms at `costAt`; undefined until the first sample. */
  cost: number | undefined;
  costAt: number;
  report: LoadReport | undefined;
  draining: boolean;
  /** Drain asked for by the registry (a `drain` flag in the member's data). */
  registryDrain: boolean;
  down: boolean;
  /** Replaces the configured weight while set (API, agent `weight:N` later). */
  weight: number | undefined;
}

/**
 * Live per-backend state of one service, keyed by backend id. It is not part
 * of a snapshot: a rebuilt strategy reads the same counts, latencies and flags,
 * so registry changes do not reset least-connections or response-time.
 * `now` is injectable for tests; defaults to Date.now.
 */
export class BackendStates implements BackendStateView {
  private readonly live = new Map<string, Live>();

  constructor(private readonly now: () => number = Date.now) {}

  usable(id: string): boolean {
    const s = this.live.get(id);
    return !s || (!s.draining && !s.registryDrain && !s.down);
  }

  active(id: string): number {
    return this.live.get(id)?.active ?? 0;
  }

  weight(backend: Backend): number {
    return this.live.get(backend.id)?.weight ?? backend.weight;
  }

  latency(id: string): number | undefined {
    const s = this.live.get(id);
    if (!s || s.cost === undefined) return undefined;
    return s.cost * Math.exp(-Math.max(0, this.now() - s.costAt) / EWMA_TAU_MS);
  }

  report(id: string): LoadReport | undefined {
    return this.live.get(id)?.report;
  }

  /** Counts a connection or request as started on `id`. Pair with release(). */
  acquire(id: string): void {
    this.entry(id).active++;
  }

  /** Counts a connection or request on `id` as finished. */
  release(id: string): void {
    const s = this.live.get(id);
    if (s && s.active > 0) s.active--;
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

  /** Draining backends keep their connections but get no new ones. */
  setDraining(id: string, draining: boolean): void {
    this.entry(id).draining = draining;
  }

  /** The registry's drain flag; kept apart from setDraining so one does not undo the other. */
  setRegistryDrain(id: string, draining: boolean): void {
    if (draining || this.live.has(id)) this.entry(id).registryDrain = draining;
  }

  /** Down backends (failed health checks, later) get no new connections. */
  setDown(id: string, down: boolean): void {
    this.entry(id).down = down;
  }

  /**
   * Forgets backends that left the snapshot and hold no connections; a
   * backend that leaves and comes back later starts afresh.
   */
  retain(ids: ReadonlySet<string>): void {
    for (const [id, s] of this.live) if (!ids.has(id) && s.active === 0) this.live.delete(id);
  }

  /** Ids that have live state (for tests and the admin API). */
  ids(): string[] {
    return [...this.live.keys()];
  }

  private entry(id: string): Live {
    let s = this.live.get(id);
    if (!s) {
      s = { active: 0, cost: undefined, costAt: 0, report: undefined, draining: false, registryDrain: false, down: false, weight: undefined };
      this.live.set(id, s);
    }
    return s;
  }
}
