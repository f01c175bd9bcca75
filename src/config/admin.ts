import { isIP } from 'node:net';
import { isScalar } from 'yaml';
import { parseAddress } from './address.js';
import { join, type MaybeNode, type Reader } from './reader.js';
import { DEFAULTS, type AdminConfig } from './schema.js';

/**
 * Reads the top-level `admin:` block. `listen` defaults to 127.0.0.1:9900;
 * `token`, when set, is required as a bearer token by mutating calls. A
 * non-loopback bind without a token serves reads only (see the admin server).
 */
export function readAdmin(r: Reader, node: MaybeNode): AdminConfig | undefined {
  // `admin: {}` or `admin:` alone turns the admin server on with its defaults.
  const resolved = r.resolve(node);
  if (isScalar(resolved) && resolved.value === null) return { listen: DEFAULTS.admin.listen };
  const m = r.map(node, 'admin', ['listen', 'token']);
  if (!m) return undefined;
  let listen = DEFAULTS.admin.listen;
  if (m.has('listen')) {
    const valueNode = m.get('listen')!.value;
    const text = r.string(valueNode, 'admin.listen');
    const address = text === undefined ? undefined : parseAddress(text, true);
    if (typeof address === 'string') r.report(valueNode, 'admin.listen', address);
    if (!address || typeof address === 'string') return undefined;
    listen = address;
  }
  let token: string | undefined;
  if (m.has('token')) {
    token = r.string(m.get('token')!.value, join('admin', 'token'));
    if (token !== undefined && (token.length < 16 || /[\s\x00-\x1f\x7f]/.test(token))) {
      r.report(m.get('token')!.value, 'admin.token', 'must be at least 16 characters, without spaces or control characters');
      return undefined;
    }
    if (token === undefined) return undefined;
  }
  return { listen, ...(token ? { token } : {}) };
}

/** Whether an admin bind address only accepts local clients. */
export function isLoopback(host: string): boolean {
  if (host === 'localhost') return true;
  if (isIP(host) === 4) return host.startsWith('127.');
  return host === '::1';
}

/** Reads `accessLog:` (`stdout` or a file path, relative to the config file's folder). */
export function readAccessLog(r: Reader, node: MaybeNode): string | undefined {
  const text = r.string(node, 'accessLog');
  if (text === undefined) return undefined;
  if (/[\x00-\x1f\x7f]/.test(text)) {
    r.report(node, 'accessLog', 'expected stdout or a file path');
    return undefined;
  }
  return text;
}
