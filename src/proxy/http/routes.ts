import type { RouteConfig } from '../../config/schema.js';
import { headerValue } from './request.js';

/** What a route is matched against: plain values, from either engine. */
export interface RouteInput {
  readonly method: string;
  /** The Host header (or the absolute-form authority), as sent. */
  readonly host: string | undefined;
  /** The origin-form path and query. */
  readonly path: string;
  /** Flat header pairs (see request.ts). */
  readonly headers: readonly string[];
}

/**
 * The first route whose every condition matches, or undefined (404).
 * Host matches without the port and case-insensitively; `*.example.com`
 * matches subdomains only. Header values match exactly (duplicates joined
 * with `, `).
 */
export function matchRoute(routes: readonly RouteConfig[], req: RouteInput): RouteConfig | undefined {
  let host: string | undefined;
  for (const route of routes) {
    const m = route.match;
    if (m.host !== undefined && !hostMatches(m.host, (host ??= hostOf(req.host)))) continue;
    if (m.pathPrefix !== undefined && !req.path.startsWith(m.pathPrefix)) continue;
    if (m.methods !== undefined && !m.methods.includes(req.method)) continue;
    if (m.headers && !Object.entries(m.headers).every(([name, value]) => headerValue(req.headers, name) === value)) continue;
    return route;
  }
  return undefined;
}

/** The Host header's name: lower case, without port or a trailing dot. */
function hostOf(header: string | undefined): string {
  if (!header) return '';
  const h = header.trim().toLowerCase();
  if (h.startsWith('[')) return h.slice(0, h.indexOf(']') + 1);
  const colon = h.lastIndexOf(':');
  const name = colon >= 0 ? h.slice(0, colon) : h;
  return name.endsWith('.') ? name.slice(0, -1) : name;
}

function hostMatches(pattern: string, host: string): boolean {
  if (pattern.startsWith('*.')) return host.endsWith(pattern.slice(1)) && host.length > pattern.length - 1;
  return host === pattern;
}
