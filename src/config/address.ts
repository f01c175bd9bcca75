import { isIP } from 'node:net';

/** A parsed `host:port`. `id` is the canonical text, and the backend id. */
export interface Address {
  readonly host: string;
  readonly port: number;
  readonly id: string;
}

const HOSTNAME = /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

/**
 * Parses `host:port`, `[ipv6]:port` or `http://host:port` (the scheme is
 * dropped: registries often store URLs). Port 0 is accepted only with
 * `allowPortZero` (listeners: "any free port"). Returns an error message
 * instead of throwing, so config checks can collect every problem.
 */
export function parseAddress(text: string, allowPortZero = false): Address | string {
  const bare = text.trim().replace(/^[a-z][a-z0-9+.-]*:\/\//i, '').replace(/\/$/, '');
  const m = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(bare);
  if (!m) return `"${text}" is not an address of the form host:port`;
  const host = m[1] ?? m[2]!;
  const port = Number(m[3]);
  // All-digit dotted names (999.1.1.1) are broken IPv4 addresses, not host names.
  const hostname = HOSTNAME.test(host) && !/^[\d.]+$/.test(host);
  if (m[1] !== undefined ? isIP(host) !== 6 : !(isIP(host) === 4 || hostname)) {
    return `"${host}" is not a valid IP address or host name`;
  }
  if (port > 65535 || (port === 0 && !allowPortZero)) return `port ${port} is out of range (1-65535)`;
  return { host, port, id: formatAddress(host, port) };
}

/** `host:port`, with brackets around IPv6 hosts. */
export function formatAddress(host: string, port: number): string {
  return isIP(host) === 6 ? `[${host}]:${port}` : `${host}:${port}`;
}

/** Whether two bind addresses would collide on one machine (same port, same or wildcard host). */
export function bindsOverlap(a: Address, b: Address): boolean {
  if (a.port === 0 || b.port === 0 || a.port !== b.port) return false;
  const wildcard = (h: string) => h === '0.0.0.0' || h === '::';
  return a.host === b.host || wildcard(a.host) || wildcard(b.host);
}
