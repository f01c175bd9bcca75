import type { LogLevel } from './config/schema.js';

const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

/** Extra fields of a log line; an Error is flattened to its code and message. */
export type LogFields = Record<string, unknown>;

/**
 * Writes one JSON object per line: `{"time","level","msg",...fields}`.
 * Defaults: level `info`, written to stdout. Connection-level events are
 * `debug` so a busy proxy does not log per connection by default.
 */
export class Logger {
  constructor(
    public level: LogLevel = 'info',
    private readonly write: (line: string) => void = (line) => process.stdout.write(line),
  ) {}

  debug(msg: string, fields?: LogFields): void {
    this.log('debug', msg, fields);
  }
  info(msg: string, fields?: LogFields): void {
    this.log('info', msg, fields);
  }
  warn(msg: string, fields?: LogFields): void {
    this.log('warn', msg, fields);
  }
  error(msg: string, fields?: LogFields): void {
    this.log('error', msg, fields);
  }

  /** Whether a level would be written (skip building fields that would be dropped). */
  enabled(level: LogLevel): boolean {
    return RANK[level] >= RANK[this.level];
  }

  private log(level: LogLevel, msg: string, fields?: LogFields): void {
    if (!this.enabled(level)) return;
    const line: LogFields = { time: new Date().toISOString(), level, msg };
    for (const [k, v] of Object.entries(fields ?? {})) {
      line[k] = v instanceof Error ? { code: (v as { code?: string }).code, message: v.message } : v;
    }
    this.write(JSON.stringify(line) + '\n');
  }
}
