import { isIP } from 'node:net';
import { isScalar } from 'yaml';
import { parseAddress, type Address } from './address.js';
import { join, type MaybeNode, type Reader } from './reader.js';
import { DEFAULTS, type HttpEngineName, type HttpListenerConfig, type ListenerConfig, type RouteConfig, type RouteMatch } from './schema.js';

// engine is read for tcp only to say why it is refused there, and proxyProtocol for http.
const TCP_KEYS = ['name', 'mode', 'bind', 'service', 'proxyProtocol', 'maxConnections', 'engine'];
const HTTP_KEYS = ['name', 'mode', 'bind', 'service', 'engine', 'routes', 'maxConnections', 'timeouts', 'trustForwardedFor', 'proxyProtocol'];
// A record, so the compiler checks that every HttpEngineName is listed and nothing else.
const ENGINES: Record<HttpEngineName, true> = { native: true, 'http-proxy': true };
const HTTP_ENGINES = Object.keys(ENGINES) as HttpEngineName[];
const METHOD = /^[A-Z][A-Z0-9_-]*$/;
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/** What readListener found, even when incomplete, so cross-listener checks still run. */
export interface ListenerDraft {
  listener?: ListenerConfig;
  /** Only an explicit name: a defaulted one clashes only when the binds do. */
  name?: string;
  bind?: Address;
  bindNode?: MaybeNode;
}

/** Reads one `listeners[]` entry of either mode, reporting every problem. */
export function readListener(r: Reader, node: MaybeNode, path: string, services: ReadonlyMap<string, unknown>): ListenerDraft {
  const raw = r.map(node, path, null);
  if (!raw) return {};
  const mode = raw.has('mode') ? r.oneOf(raw.get('mode')!.value, join(path, 'mode'), ['tcp', 'http'] as const) : 'tcp';
  const m = r.map(node, path, mode === 'http' ? HTTP_KEYS : TCP_KEYS)!;
  if (mode === 'http' && raw.has('proxyProtocol')) {
    r.report(raw.get('proxyProtocol')!.key, join(path, 'proxyProtocol'), 'only for mode: tcp (pooled HTTP connections carry many clients)');
  }
  // Only a known tcp listener: with a misspelt mode, the user may have meant http.
  if (mode === 'tcp' && raw.has('engine')) {
    r.report(raw.get('engine')!.key, join(path, 'engine'), 'only for mode: http (a tcp listener forwards bytes, not requests)');
  }
  let bind: Address | undefined;
  const bindPair = m.get('bind');
  if (!bindPair) r.report(node, join(path, 'bind'), 'required: the address to listen on, host:port');
  else {
    const text = r.string(bindPair.value, join(path, 'bind'));
    const parsed = text === undefined ? undefined : parseAddress(text, true);
    if (typeof parsed === 'string') r.report(bindPair.value, join(path, 'bind'), parsed);
    else bind = parsed;
  }
  const serviceName = (n: MaybeNode, p: string): string | undefined => {
    const s = r.string(n, p);
    if (s === undefined || services.has(s)) return s;
    const known = [...services.keys()];
    r.report(n, p, `no service named "${s}"${known.length ? ` (services: ${known.join(', ')})` : ''}`);
    return undefined;
  };
  const service = m.has('service') ? serviceName(m.get('service')!.value, join(path, 'service')) : undefined;
  const fallbackName = bind && bind.port !== 0 ? bind.id : path;
  const name = m.has('name') ? r.string(m.get('name')!.value, join(path, 'name')) : fallbackName;
  const maxConnections = m.has('maxConnections')
    ? r.integer(m.get('maxConnections')!.value, join(path, 'maxConnections'), 1, 1_000_000)
    : DEFAULTS.listener.maxConnections;
  const draft: ListenerDraft = { name: m.has('name') ? name : undefined, bind, bindNode: bindPair?.value };

  // An unknown mode is reported above; the rest is still checked as tcp.
  if (mode !== 'http') {
    if (!m.has('service')) r.report(node, join(path, 'service'), 'required: the service to forward to');
    const proxyProtocol = m.has('proxyProtocol')
      ? readProxyProtocol(r, m.get('proxyProtocol')!.value, join(path, 'proxyProtocol'))
      : DEFAULTS.listener.proxyProtocol;
    if (!mode || !bind || !name || !maxConnections || !service || !proxyProtocol) return draft;
    return { ...draft, listener: { name, mode, bind, service, proxyProtocol, maxConnections } };
  }

  const engine = m.has('engine') ? r.oneOf(m.get('engine')!.value, join(path, 'engine'), HTTP_ENGINES) : defaultEngine(r, node, join(path, 'engine'));
  const routes: RouteConfig[] = [];
  let routesOk = true;
  if (m.has('routes')) {
    const items = r.seq(m.get('routes')!.value, join(path, 'routes')) ?? [];
    items.forEach((item, i) => {
      const route = readRoute(r, item, join(join(path, 'routes'), i), serviceName);
      if (route) routes.push(route);
      else routesOk = false;
    });
    if (m.has('service') && service) routes.push({ match: {}, service });
  } else if (service) {
    routes.push({ match: {}, service });
  } else if (!m.has('service')) {
    r.report(node, join(path, 'routes'), 'required: `routes:` (or `service:` for a single default route)');
  }
  const timeouts = readHttpTimeouts(r, m.get('timeouts')?.value, join(path, 'timeouts'));
  const trust = readTrust(r, m.get('trustForwardedFor')?.value, join(path, 'trustForwardedFor'));
  if (!bind || !name || !engine || !maxConnections || !routesOk || routes.length === 0 || !timeouts || !trust) return draft;
  const listener: HttpListenerConfig = { name, mode, bind, engine, routes, maxConnections, timeouts, trustForwardedFor: trust };
  return { ...draft, listener };
}

function readProxyProtocol(r: Reader, node: MaybeNode, path: string): 'off' | 'v1' | 'v2' | undefined {
  const v = r.resolve(node);
  // YAML 1.1 habits: `off` may arrive as boolean false.
  if (isScalar(v) && v.value === false) return 'off';
  return r.oneOf(node, path, ['off', 'v1', 'v2'] as const);
}

function readRoute(
  r: Reader,
  node: MaybeNode,
  path: string,
  serviceName: (n: MaybeNode, p: string) => string | undefined,
): RouteConfig | undefined {
  const m = r.map(node, path, ['match', 'service']);
  if (!m) return undefined;
  if (!m.has('service')) r.report(node, join(path, 'service'), 'required: the service this route forwards to');
  const service = m.has('service') ? serviceName(m.get('service')!.value, join(path, 'service')) : undefined;
  let match: RouteMatch = {};
  if (m.has('match')) {
    const mp = join(path, 'match');
    const mm = r.map(m.get('match')!.value, mp, ['host', 'pathPrefix', 'method', 'headers']);
    if (!mm) return undefined;
    const out: { -readonly [K in keyof RouteMatch]: RouteMatch[K] } = {};
    if (mm.has('host')) {
      const host = r.string(mm.get('host')!.value, join(mp, 'host'));
      if (host !== undefined && !/^(\*\.)?[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*$/.test(host)) {
        r.report(mm.get('host')!.value, join(mp, 'host'), `"${host}" is not a host name or *.domain pattern (without port)`);
      } else if (host !== undefined) out.host = host.toLowerCase();
    }
    if (mm.has('pathPrefix')) {
      const prefix = r.string(mm.get('pathPrefix')!.value, join(mp, 'pathPrefix'));
      if (prefix !== undefined && !prefix.startsWith('/')) r.report(mm.get('pathPrefix')!.value, join(mp, 'pathPrefix'), 'must start with /');
      else if (prefix !== undefined) out.pathPrefix = prefix;
    }
    if (mm.has('method')) out.methods = readMethods(r, mm.get('method')!.value, join(mp, 'method'));
    if (mm.has('headers')) {
      const hp = join(mp, 'headers');
      const hm = r.map(mm.get('headers')!.value, hp, null);
      const headers: Record<string, string> = {};
      for (const [k, pair] of hm ?? []) {
        const v = r.resolve(pair.value);
        if (!HEADER_NAME.test(k)) r.report(pair.key, join(hp, k), 'not a valid header name');
        else if (isScalar(v) && v.value !== null && typeof v.value !== 'object') headers[k.toLowerCase()] = String(v.value);
        else r.report(pair.value, join(hp, k), 'header values must be strings');
      }
      out.headers = headers;
    }
    match = out;
  }
  return service ? { match, service } : undefined;
}

/** `GET` or `[GET, HEAD]`, upper-cased. Shared with the service's `idempotentMethods`. */
export function readMethods(r: Reader, node: MaybeNode, path: string): string[] {
  const v = r.resolve(node);
  const items = isScalar(v) ? [v] : (r.seq(v, path) ?? []);
  const out: string[] = [];
  items.forEach((item, i) => {
    const p = isScalar(v) ? path : join(path, i);
    const method = r.string(item, p)?.toUpperCase();
    if (method !== undefined && !METHOD.test(method)) r.report(item, p, `"${method}" is not an HTTP method`);
    else if (method !== undefined) out.push(method);
  });
  return out;
}

/**
 * An http listener's `timeouts:`. `request` (headers and body) bounds
 * `headers`: a longer `headers` is refused, and its default is cut to
 * `request` (Node's own server refuses headersTimeout > requestTimeout too).
 */
function readHttpTimeouts(r: Reader, node: MaybeNode, path: string): HttpListenerConfig['timeouts'] | undefined {
  const d = DEFAULTS.listener.http.timeouts;
  if (node === undefined) return { ...d };
  const m = r.map(node, path, ['connect', 'response', 'idle', 'headers', 'request']);
  if (!m) return undefined;
  const read = (key: string, fallback: number | undefined) => {
    if (!m.has(key)) return fallback;
    const ms = r.duration(m.get(key)!.value, join(path, key));
    if (ms === 0) r.report(m.get(key)!.value, join(path, key), 'must be longer than 0');
    return ms || undefined;
  };
  const connect = read('connect', undefined);
  const request = read('request', d.request);
  const out = { response: read('response', d.response), idle: read('idle', d.idle), headers: read('headers', Math.min(d.headers, request ?? d.headers)), request };
  if (out.headers && request && out.headers > request) {
    r.report(m.get('headers')!.value, join(path, 'headers'), `must not be longer than request (${request}ms)`);
    return undefined;
  }
  if (!out.response || !out.idle || !out.headers || !out.request) return undefined;
  return { response: out.response, idle: out.idle, headers: out.headers, request: out.request, ...(connect ? { connect } : {}) };
}

function readTrust(r: Reader, node: MaybeNode, path: string): string[] | undefined {
  const v = r.resolve(node);
  if (v === undefined || (isScalar(v) && v.value === false)) return [];
  const items = r.seq(v, path);
  if (!items) return undefined;
  const out: string[] = [];
  let ok = true;
  items.forEach((item, i) => {
    const text = r.string(item, join(path, i));
    const [address, bits, extra] = (text ?? '').split('/');
    const family = isIP(address ?? '');
    const maxBits = family === 6 ? 128 : 32;
    const bitsOk = bits === undefined || (/^\d+$/.test(bits) && Number(bits) <= maxBits);
    if (text === undefined) ok = false;
    else if (!family || !bitsOk || extra !== undefined) {
      r.report(item, join(path, i), `"${text}" is not an IP address or CIDR (10.0.0.0/8, ::1)`);
      ok = false;
    } else out.push(text);
  });
  return ok ? out : undefined;
}

/**
 * The engine of an HTTP listener that names none: `DROVER_HTTP_ENGINE` from
 * the environment when set (switch every listener to the fallback without
 * editing the file; the test suite runs its HTTP tests on both engines this
 * way), else `native`.
 */
function defaultEngine(r: Reader, node: MaybeNode, path: string): HttpEngineName | undefined {
  const env = process.env.DROVER_HTTP_ENGINE;
  if (env === undefined || env === '') return DEFAULTS.listener.http.engine;
  if ((HTTP_ENGINES as readonly string[]).includes(env)) return env as HttpEngineName;
  r.report(node, path, `DROVER_HTTP_ENGINE is "${env}": expected one of ${HTTP_ENGINES.join(', ')}`);
  return undefined;
}
