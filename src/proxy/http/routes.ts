import type { IncomingMessage } from 'node:http';
import type { RouteConfig } from '../config/schema.js';

/**
 * The first route whose every condition matches, or undefined (404).
 * Host matches without the port and case-insensitively; `*.example.com`
 * matches subdomains only. Header values match exactly.
 */
export function matchRoute(routes: readonly RouteConfig[], req: IncomingMessage): RouteConfig | undefined {
  const host = hostOf(req.headers.host);
  const path = req.url ?? '/';
  return routes.find(({ match: m }) => {
    if (m.host !== undefined && !hostMatches(m.host, host)) return false;
    if (m.pathPrefix !== undefined && !path.startsWith(m.pathPrefix)) return false;
    if (m.methods !== undefined && !m.methods.includes(req.method ?? '')) return false;
    if (m.headers) {
      for (const [name, value] of Object.entries(m.headers)) if (req.headers[name] !== value) return false;
    }
    return true;
  });
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
