import { createWriteStream } from 'node:fs';
import type { Writable } from 'node:stream';
import type { Logger } from '../log.js';

/** Lines waiting beyond this many characters (the target cannot keep up) are dropped, and counted. */
export const ACCESS_LOG_MAX_PENDING = 8 * 1024 * 1024;

/** Lines are written once this many characters wait... */
export const ACCESS_LOG_FLUSH_SIZE = 64 * 1024;

/** ...or this many ms after the first of them, whichever comes first. */
export const ACCESS_LOG_FLUSH_MS = 100;

/** One access log line: a JSON object. */
export type AccessLogEntry = Record<string, string | number | null | undefined>;

/**
 * The access log: JSON lines on stdout or appended to a file. Lines are
 * batched: written once 64 KB wait or 100 ms after the first, in one write
 * (one syscall for many requests, not one per request), and on close().
 * While the target cannot keep up (a full pipe, a slow disk) lines wait, up
 * to 8 MB; past that they are dropped and counted, with a warning, rather
 * than held without bound. A file that cannot be opened or written is logged
 * as an error once, and the proxy goes on without an access log.
 */
export class AccessLog {
  private pending = '';
  private timer: NodeJS.Timeout | undefined;
  private soon = false;
  private waiting = false;
  private closed = false;
  private broken = false;
  /** Lines dropped because the target could not keep up. */
  dropped = 0;
  private droppedSinceWarning = 0;

  private constructor(
    /** `stdout` or the file path, as in the config. */
    readonly target: string,
    private readonly out: Writable,
    private readonly owned: boolean,
    private readonly log: Logger,
  ) {}

  /** Opens `stdout` or a file (appended to; opened in the background: a failure is logged, not thrown). */
  static open(target: string, log: Logger): AccessLog {
    if (target === 'stdout') return new AccessLog(target, process.stdout, false, log);
    const stream = createWriteStream(target, { flags: 'a' });
    const accessLog = new AccessLog(target, stream, true, log);
    stream.on('error', (err) => accessLog.fail(err));
    return accessLog;
  }

  /** Queues one line. Never throws, never blocks. */
  write(entry: AccessLogEntry): void {
    if (this.closed || this.broken) return;
    if (this.pending.length > ACCESS_LOG_MAX_PENDING) {
      if (this.droppedSinceWarning++ === 0) this.log.warn('access log cannot keep up: dropping lines', { accessLog: this.target });
      this.dropped++;
      return;
    }
    this.pending += JSON.stringify(entry) + '\n';
    if (this.waiting) return;
    if (this.pending.length >= ACCESS_LOG_FLUSH_SIZE) {
      if (!this.soon) {
        this.soon = true;
        setImmediate(this.flush);
      }
    } else if (!this.timer) this.timer = setTimeout(this.flush, ACCESS_LOG_FLUSH_MS);
  }

  /** Writes what is queued and closes a file (stdout stays open). Resolves once the file is closed. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.timer);
    if (this.broken) return;
    if (this.pending !== '') this.out.write(this.pending);
    this.pending = '';
    if (!this.owned) return;
    const stream = this.out;
    await new Promise<void>((resolve) => {
      stream.once('close', resolve);
      stream.end();
    });
  }

  private readonly flush = (): void => {
    this.soon = false;
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.broken || this.closed || this.waiting || this.pending === '') return;
    const chunk = this.pending;
    this.pending = '';
    if (this.droppedSinceWarning > 0) {
      this.log.warn('access log caught up', { accessLog: this.target, dropped: this.droppedSinceWarning });
      this.droppedSinceWarning = 0;
    }
    if (!this.out.write(chunk)) {
      this.waiting = true;
      this.out.once('drain', () => {
        this.waiting = false;
        this.flush();
      });
    }
  };

  private fail(err: Error): void {
    if (this.broken) return;
    this.broken = true;
    this.pending = '';
    clearTimeout(this.timer);
    this.log.error('access log failed: continuing without it', { accessLog: this.target, error: err });
    this.out.destroy();
  }
}
