import type { Member } from '../config/schema.js';

/**
 * Where a service's members come from. A source always delivers the FULL
 * member list (never deltas); the balancer drops lists equal to its current
 * snapshot. Static lists deliver once; ZooKeeper delivers on every change.
 */
export interface MemberSource {
  /**
   * Starts delivering; `onMembers` may be called synchronously. `since`,
   * when given, is the performance.now() of the event that caused this list
   * (for drover_discovery_update_seconds).
   */
  start(onMembers: (members: readonly Member[], since?: number) => void): void;
  /** Stops delivering and releases what the source holds. */
  stop(): Promise<void>;
}
