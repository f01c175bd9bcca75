/**
 * Drover's named errors. Each has a stable `code` that users can match on and
 * that the README lists; messages may change, codes do not.
 */

/** Base class: every error Drover raises on purpose carries a `code`. */
export class DroverError extends Error {
  constructor(
    readonly code: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** One problem in a config file, located at `file:line:column` and a key path. */
export interface ConfigProblem {
  readonly file: string;
  readonly line: number;
  readonly column: number;
  /** Dotted key path, e.g. `services.web.timeouts.connect`; empty for the whole file. */
  readonly path: string;
  readonly message: string;
}

/** DROVER_CONFIG_INVALID: the file parsed but breaks the schema; lists every problem found. */
export class ConfigInvalidError extends DroverError {
  constructor(readonly problems: readonly ConfigProblem[]) {
    super('DROVER_CONFIG_INVALID', problems.map(formatProblem).join('\n'));
  }
}

/** DROVER_CONFIG_UNREADABLE: the file could not be read at all (missing, no permission). */
export class ConfigUnreadableError extends DroverError {
  constructor(file: string, cause: unknown) {
    super('DROVER_CONFIG_UNREADABLE', `${file}: cannot read config: ${(cause as Error | null)?.message ?? String(cause)}`, { cause });
  }
}

/** DROVER_LISTEN_FAILED: a listener could not bind its address (in use, no permission). */
export class ListenError extends DroverError {
  constructor(listener: string, bind: string, cause: unknown) {
    super('DROVER_LISTEN_FAILED', `listener ${listener}: cannot bind ${bind}: ${(cause as Error | null)?.message ?? String(cause)}`, {
      cause,
    });
  }
}

/** DROVER_NO_BACKEND: a service had no usable backend for a connection or request. */
export class NoBackendError extends DroverError {
  constructor(service: string) {
    super('DROVER_NO_BACKEND', `service ${service}: no usable backend`);
  }
}

/** DROVER_UPSTREAM_FAILED: every candidate backend refused, timed out or reset. */
export class UpstreamError extends DroverError {
  constructor(service: string, attempts: number, cause: unknown) {
    super(
      'DROVER_UPSTREAM_FAILED',
      `service ${service}: ${attempts} backend(s) failed, last: ${(cause as Error | null)?.message ?? String(cause)}`,
      { cause },
    );
  }
}

/** DROVER_RELOAD_REFUSED: a valid config that cannot be applied to a running Drover (the old one keeps running). */
export class ReloadError extends DroverError {
  constructor(message: string) {
    super('DROVER_RELOAD_REFUSED', message);
  }
}

/** DROVER_USAGE: the command line is wrong. */
export class UsageError extends DroverError {
  constructor(message: string) {
    super('DROVER_USAGE', message);
  }
}

/** `file:line:column: key.path: message`, the one format every config problem is printed in. */
export function formatProblem(p: ConfigProblem): string {
  return `${p.file}:${p.line}:${p.column}: ${p.path ? `${p.path}: ` : ''}${p.message}`;
}
