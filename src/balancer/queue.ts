/**
 * One service's queue of work waiting for a backend slot (HAProxy's backend
 * queue): requests that found every usable backend at its limit wait here,
 * first come first served, for a bounded time. Slots are not reserved: when
 * one frees, the head of the queue tries again, and goes back to the head
 * if another took the slot first.
 */

/** One waiting request, as the queue sees it. */
export interface Waiter {
  /** Try again now: true when placed (or answered), false to keep waiting. */
  retry(): boolean;
  /** The wait is over without a slot (`timeout`), or the waiter was dropped (`closed`). */
  expire(why: 'timeout' | 'closed'): void;
}

interface Entry {
  readonly waiter: Waiter;
  readonly deadline: number;
}

export class SlotQueue {
  private entries: Entry[] = [];
  private timer: NodeJS.Timeout | undefined;
  private scheduled = false;

  /** Requests waiting now. */
  get length(): number {
    return this.entries.length;
  }

  /**
   * Queues `waiter` for at most `timeoutMs`; false (and nothing queued) when
   * `size` are already waiting.
   */
  add(waiter: Waiter, size: number, timeoutMs: number): boolean {
    if (this.entries.length >= size) return false;
    this.entries.push({ waiter, deadline: performance.now() + timeoutMs });
    this.arm();
    return true;
  }

  /** Takes `waiter` out (its client went away); false when it was not waiting. */
  remove(waiter: Waiter): boolean {
    const i = this.entries.findIndex((e) => e.waiter === waiter);
    if (i < 0) return false;
    this.entries.splice(i, 1);
    if (this.entries.length === 0) this.disarm();
    return true;
  }

  /**
   * A slot may have freed: the waiters try again in order, once the current
   * call stack is done (a release happens in the middle of another request's
   * teardown), until one cannot be placed.
   */
  wake(): void {
    if (this.scheduled || this.entries.length === 0) return;
    this.scheduled = true;
    queueMicrotask(() => {
      this.scheduled = false;
      while (this.entries.length > 0) {
        const head = this.entries[0]!;
        if (!head.waiter.retry()) break;
        // retry() may have removed it already (answered and closed).
        if (this.entries[0] === head) this.entries.shift();
      }
      if (this.entries.length === 0) this.disarm();
    });
  }

  /** Expires every waiter (stop, or the service went away). */
  clear(): void {
    const all = this.entries;
    this.entries = [];
    this.disarm();
    for (const e of all) e.waiter.expire('closed');
  }

  private arm(): void {
    if (this.timer || this.entries.length === 0) return;
    const wait = Math.max(0, this.entries[0]!.deadline - performance.now());
    this.timer = setTimeout(() => this.expireDue(), wait + 1);
    this.timer.unref();
  }

  private disarm(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  private expireDue(): void {
    this.timer = undefined;
    const now = performance.now();
    const due: Entry[] = [];
    // Deadlines are in arrival order only while the timeout stays the same; a reload may change it.
    this.entries = this.entries.filter((e) => (e.deadline <= now ? (due.push(e), false) : true));
    for (const e of due) e.waiter.expire('timeout');
    this.arm();
  }
}
