import { isScalar } from 'yaml';
import { join, type MaybeNode, type Reader } from './reader.js';
import { DEFAULTS, type AgentConfig, type HealthCheckConfig, type OutlierConfig } from './schema.js';

/** Reads a service's `healthCheck:` block; durations must be above 0 and timeout at most interval. */
export function readHealthCheck(r: Reader, node: MaybeNode, path: string): HealthCheckConfig | undefined {
  const known = ['type', 'path', 'expect', 'host', 'interval', 'timeout', 'rise', 'fall', 'startUnhealthy', 'shared'];
  const m = r.map(node, path, known);
  if (!m) return undefined;
  const d = DEFAULTS.service.healthCheck;
  const at = (key: string) => m.get(key)?.value;
  const type = m.has('type') ? r.oneOf(at('type'), join(path, 'type'), ['tcp', 'http'] as const) : d.type;
  if (type === 'tcp') {
    for (const key of ['path', 'expect', 'host']) {
      if (m.has(key)) r.report(m.get(key)!.key, join(path, key), 'only http checks take this key (type: http)');
    }
  }
  let checkPath = d.path;
  if (m.has('path')) {
    const p = r.string(at('path'), join(path, 'path'));
    if (p !== undefined && (!p.startsWith('/') || /[\s\x00-\x1f\x7f]/.test(p))) r.report(at('path'), join(path, 'path'), 'must start with / and hold no spaces or control characters');
    else if (p !== undefined) checkPath = p;
  }
  const expect = m.has('expect') ? readStatusRanges(r, at('expect'), join(path, 'expect')) : d.expect;
  let host: string | undefined;
  if (m.has('host')) {
    host = r.string(at('host'), join(path, 'host'));
    if (host !== undefined && /[\s\x00-\x1f\x7f/]/.test(host)) {
      r.report(at('host'), join(path, 'host'), 'must be a host name, optionally with :port');
      host = undefined;
    }
  }
  const interval = m.has('interval') ? positiveDuration(r, at('interval'), join(path, 'interval')) : d.interval;
  const timeout = m.has('timeout') ? positiveDuration(r, at('timeout'), join(path, 'timeout')) : Math.min(d.timeout, interval ?? d.timeout);
  if (interval !== undefined && timeout !== undefined && timeout > interval) {
    r.report(at('timeout'), join(path, 'timeout'), `must not be longer than interval (${interval}ms)`);
  }
  const rise = m.has('rise') ? r.integer(at('rise'), join(path, 'rise'), 1, 100) : d.rise;
  const fall = m.has('fall') ? r.integer(at('fall'), join(path, 'fall'), 1, 100) : d.fall;
  const startUnhealthy = m.has('startUnhealthy') ? boolean(r, at('startUnhealthy'), join(path, 'startUnhealthy')) : d.startUnhealthy;
  const shared = m.has('shared') ? boolean(r, at('shared'), join(path, 'shared')) : d.shared;
  if (type === undefined || expect === undefined || interval === undefined || timeout === undefined) return undefined;
  if (rise === undefined || fall === undefined || startUnhealthy === undefined || shared === undefined) return undefined;
  return { type, path: checkPath, expect, ...(host ? { host } : {}), interval, timeout, rise, fall, startUnhealthy, shared };
}

/** Reads a service's `outlier:` block. */
export function readOutlier(r: Reader, node: MaybeNode, path: string): OutlierConfig | undefined {
  const m = r.map(node, path, ['consecutiveFailures', 'baseEjection', 'maxEjection', 'maxEjectedPercent']);
  if (!m) return undefined;
  const d = DEFAULTS.service.outlier;
  const at = (key: string) => m.get(key)?.value;
  const consecutiveFailures = m.has('consecutiveFailures') ? r.integer(at('consecutiveFailures'), join(path, 'consecutiveFailures'), 1, 1000) : d.consecutiveFailures;
  const baseEjection = m.has('baseEjection') ? positiveDuration(r, at('baseEjection'), join(path, 'baseEjection')) : d.baseEjection;
  let maxEjection = m.has('maxEjection') ? positiveDuration(r, at('maxEjection'), join(path, 'maxEjection')) : undefined;
  if (maxEjection !== undefined && baseEjection !== undefined && maxEjection < baseEjection) {
    r.report(at('maxEjection'), join(path, 'maxEjection'), `must not be shorter than baseEjection (${baseEjection}ms)`);
  }
  maxEjection ??= Math.max(d.maxEjection, baseEjection ?? 0);
  const maxEjectedPercent = m.has('maxEjectedPercent') ? readPercent(r, at('maxEjectedPercent'), join(path, 'maxEjectedPercent')) : d.maxEjectedPercent;
  if (consecutiveFailures === undefined || baseEjection === undefined || maxEjectedPercent === undefined) return undefined;
  return { consecutiveFailures, baseEjection, maxEjection, maxEjectedPercent };
}

/** Reads a service's `agent:` block. `port` may be left to each member's `agentPort`. */
export function readAgent(r: Reader, node: MaybeNode, path: string): AgentConfig | undefined {
  const m = r.map(node, path, ['port', 'interval', 'timeout', 'send']);
  if (!m) return undefined;
  const d = DEFAULTS.service.agent;
  const at = (key: string) => m.get(key)?.value;
  const port = m.has('port') ? r.integer(at('port'), join(path, 'port'), 1, 65535) : undefined;
  const interval = m.has('interval') ? positiveDuration(r, at('interval'), join(path, 'interval')) : d.interval;
  const timeout = m.has('timeout') ? positiveDuration(r, at('timeout'), join(path, 'timeout')) : Math.min(d.timeout, interval ?? d.timeout);
  if (interval !== undefined && timeout !== undefined && timeout > interval) {
    r.report(at('timeout'), join(path, 'timeout'), `must not be longer than interval (${interval}ms)`);
  }
  let send = d.send;
  if (m.has('send')) {
    const v = r.resolve(at('send'));
    if (isScalar(v) && typeof v.value === 'string' && !/[\x00-\x08\x0b-\x1f\x7f]/.test(v.value) && v.value.length <= 1024) send = v.value;
    else r.report(v, join(path, 'send'), 'expected a string of at most 1024 printable characters ("" sends nothing)');
  }
  if ((m.has('port') && port === undefined) || interval === undefined || timeout === undefined) return undefined;
  return { ...(port !== undefined ? { port } : {}), interval, timeout, send };
}

/** `50%` or a number from 0 to 100. */
export function readPercent(r: Reader, node: MaybeNode, path: string): number | undefined {
  node = r.resolve(node);
  const raw = isScalar(node) ? node.value : undefined;
  const n = typeof raw === 'number' ? raw : typeof raw === 'string' && /^\d+(\.\d+)?%$/.test(raw.trim()) ? Number(raw.trim().slice(0, -1)) : NaN;
  if (Number.isFinite(n) && n >= 0 && n <= 100) return n;
  r.report(node, path, 'expected a percentage from 0% to 100%');
  return undefined;
}

/** A duration above 0. */
export function positiveDuration(r: Reader, node: MaybeNode, path: string): number | undefined {
  const ms = r.duration(node, path);
  if (ms === 0) {
    r.report(node, path, 'must be longer than 0');
    return undefined;
  }
  return ms;
}

function boolean(r: Reader, node: MaybeNode, path: string): boolean | undefined {
  node = r.resolve(node);
  if (isScalar(node) && typeof node.value === 'boolean') return node.value;
  r.report(node, path, 'expected true or false');
  return undefined;
}

/** `200-399`, `200`, or a list of those: inclusive status ranges from 100 to 599. */
function readStatusRanges(r: Reader, node: MaybeNode, path: string): Array<readonly [number, number]> | undefined {
  node = r.resolve(node);
  const raw = isScalar(node) ? node.value : undefined;
  const parts = typeof raw === 'number' ? [String(raw)] : typeof raw === 'string' ? raw.split(',').map((s) => s.trim()) : [];
  const out: Array<readonly [number, number]> = [];
  for (const part of parts) {
    const m = /^(\d{3})(?:-(\d{3}))?$/.exec(part);
    const lo = m ? Number(m[1]) : NaN;
    const hi = m ? Number(m[2] ?? m[1]) : NaN;
    if (!(lo >= 100 && hi <= 599 && lo <= hi)) {
      r.report(node, path, 'expected status codes or ranges like 200-399 or "200,204" (100-599)');
      return undefined;
    }
    out.push([lo, hi]);
  }
  if (out.length === 0) {
    r.report(node, path, 'expected status codes or ranges like 200-399 or "200,204" (100-599)');
    return undefined;
  }
  return out;
}
