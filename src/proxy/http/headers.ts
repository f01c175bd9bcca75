import { BlockList, isIP } from 'node:net';
import { ORCA_HEADER } from '../../health/orca.js';

/**
 * Header rewriting for both HTTP engines, on flat `[name, value, ...]` lists
 * (see request.ts). Names keep the case they arrived in; comparisons are
 * case-insensitive.
 */

/** Hop-by-hop headers (RFC 9110 7.6.1), never forwarded in either direction. */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'proxy-connection', 'proxy-authenticate', 'proxy-authorization']);

/** Headers a Connection header may not name away: they frame or route the message. */
const PROTECTED = new Set(['host', 'content-length', 'transfer-encoding']);

/** The tokens a Connection header names (lower case), protected ones left out. */
function namedByConnection(headers: readonly string[]): Set<string> | undefined {
  let named: Set<string> | undefined;
  for (let i = 0; i < headers.length; i += 2) {
    if (headers[i]!.length !== 10 || headers[i]!.toLowerCase() !== 'connection') continue;
    // The usual values name no header: no split, no set.
    const value = headers[i + 1]!.toLowerCase();
    if (value === 'keep-alive' || value === 'close') continue;
    for (const t of value.split(',')) {
      const token = t.trim();
      if (token && !PROTECTED.has(token)) (named ??= new Set()).add(token);
    }
  }
  return named;
}

/** What upstreamHeaders needs besides the client's headers. */
export interface ForwardContext {
  /** The client's address as the socket sees it (IPv4-mapped IPv6 is unmapped here). */
  readonly peer: string | undefined;
  /** The peer is a trusted proxy: its X-Forwarded-* and Forwarded are kept. */
  readonly trusted: boolean;
  /** Host to send; replaces the client's when the target was in absolute form. */
  readonly host: string | undefined;
  readonly hostFromTarget: boolean;
  /** The X-Request-Id to send, when Drover chose one (access log on). */
  readonly requestId: string | undefined;
  /** Upgrade tokens to pass on (`Connection: upgrade` + `Upgrade`); empty for none. */
  readonly upgradeTo: string;
}

/**
 * The request headers sent upstream, framing excluded (each engine frames the
 * body from what it read, never from forwarded headers, so nothing can leave
 * a body without a length or with a wrong one). Removed: hop-by-hop headers
 * and those Connection names, Content-Length, Expect (Drover answers
 * 100-continue itself), a Forwarded header from an untrusted peer (a forgery
 * waiting to be believed). X-Forwarded-For gets the peer appended;
 * X-Forwarded-Proto and -Host are set unless a trusted peer sent them.
 */
export function upstreamHeaders(headers: readonly string[], ctx: ForwardContext): string[] {
  const named = namedByConnection(headers);
  const out: string[] = [];
  let xff: string | undefined;
  let proto: string | undefined;
  let fwdHost: string | undefined;
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i]!;
    const value = headers[i + 1]!;
    const lower = name.toLowerCase();
    switch (lower) {
      case 'host':
        if (ctx.hostFromTarget) continue;
        break;
      case 'content-length':
      case 'expect':
        continue;
      case 'x-forwarded-for':
        xff = xff === undefined ? value : `${xff}, ${value}`;
        continue;
      case 'x-forwarded-proto':
        proto ??= value;
        continue;
      case 'x-forwarded-host':
        fwdHost ??= value;
        continue;
      case 'x-request-id':
        if (ctx.requestId !== undefined) continue;
        break;
      case 'forwarded':
        if (!ctx.trusted) continue;
        break;
      default:
        if (HOP_BY_HOP.has(lower) || lower.startsWith('proxy-') || named?.has(lower)) continue;
    }
    out.push(name, value);
  }
  if (ctx.hostFromTarget && ctx.host !== undefined) out.push('host', ctx.host);
  if (ctx.requestId !== undefined) out.push('x-request-id', ctx.requestId);
  const peer = ctx.peer ? unmapped(ctx.peer) : undefined;
  if (peer) out.push('x-forwarded-for', xff ? `${xff}, ${peer}` : peer);
  else if (xff) out.push('x-forwarded-for', xff);
  out.push('x-forwarded-proto', ctx.trusted && proto ? proto : 'http');
  const shownHost = ctx.trusted && fwdHost ? fwdHost : ctx.host;
  if (shownHost) out.push('x-forwarded-host', shownHost);
  if (ctx.upgradeTo) out.push('connection', 'upgrade', 'upgrade', ctx.upgradeTo);
  return out;
}

/** The response headers as the client gets them, and the backend's load report. */
export interface DownstreamHeaders {
  /** Flat pairs, hop-by-hop removed, Content-Length kept. */
  readonly headers: string[];
  /** The `endpoint-load-metrics` value (meant for Drover, as in Envoy), if any. */
  readonly orca: string | undefined;
}

/**
 * Response headers for the client: hop-by-hop headers and those Connection
 * names removed (Transfer-Encoding too: each engine re-frames the body), the
 * ORCA load report taken out. With `upgrade`, the backend's Connection and
 * Upgrade pair stays (a 101 passes them on).
 */
export function downstreamHeaders(headers: readonly string[], upgrade = false): DownstreamHeaders {
  const named = namedByConnection(headers);
  const out: string[] = [];
  let orca: string | undefined;
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i]!;
    const lower = name.toLowerCase();
    if (lower === ORCA_HEADER) {
      orca ??= headers[i + 1];
      continue;
    }
    if (upgrade && (lower === 'connection' || lower === 'upgrade')) {
      out.push(name, headers[i + 1]!);
      continue;
    }
    if (HOP_BY_HOP.has(lower) || lower.startsWith('proxy-') || named?.has(lower)) continue;
    out.push(name, headers[i + 1]!);
  }
  return { headers: out, orca };
}

/**
 * A response transfer coding Drover cannot pass on, or undefined. Only
 * `chunked` is undone and re-framed; any other coding (`gzip, chunked`)
 * would reach the client decoded of its chunking but still compressed, with
 * nothing saying so: such an answer is a bad gateway.
 */
export function unsupportedCoding(headers: readonly string[]): string | undefined {
  for (let i = 0; i < headers.length; i += 2) {
    if (headers[i]!.length !== 17 || headers[i]!.toLowerCase() !== 'transfer-encoding') continue;
    if (headers[i + 1]!.trim().toLowerCase() !== 'chunked') return headers[i + 1];
  }
  return undefined;
}

/** Trailer fields that must never be passed on: they frame, route or authenticate. */
const FORBIDDEN_TRAILERS = new Set(['content-length', 'transfer-encoding', 'host', 'content-type', 'content-encoding', 'content-range', 'trailer', 'authorization', 'set-cookie', 'te', 'connection', 'keep-alive', 'upgrade']);

/** Trailer fields that may be forwarded (RFC 9110 6.5.1: nothing that frames, routes or authenticates). */
export function allowedTrailers(trailers: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < trailers.length; i += 2) {
    const lower = trailers[i]!.toLowerCase();
    if (!FORBIDDEN_TRAILERS.has(lower) && !lower.startsWith('proxy-')) out.push(trailers[i]!, trailers[i + 1]!);
  }
  return out;
}

/**
 * Which peers' X-Forwarded-For is believed: a list of addresses and CIDRs,
 * checked with Node's BlockList. IPv4-mapped IPv6 peers (`::ffff:10.0.0.1`)
 * are checked as IPv4.
 */
export class TrustedProxies {
  private readonly list = new BlockList();
  private readonly empty: boolean;

  constructor(entries: readonly string[]) {
    this.empty = entries.length === 0;
    for (const entry of entries) {
      const [address, bits] = entry.split('/') as [string, string | undefined];
      const family = isIP(address) === 6 ? 'ipv6' : 'ipv4';
      if (bits === undefined) this.list.addAddress(address, family);
      else this.list.addSubnet(address, Number(bits), family);
    }
  }

  /** Whether `address` is a trusted proxy. */
  has(address: string | undefined): boolean {
    if (this.empty || !address) return false;
    const plain = unmapped(address);
    return this.list.check(plain, isIP(plain) === 6 ? 'ipv6' : 'ipv4');
  }

  /**
   * The client address to balance on: the peer, or, when the peer is trusted,
   * the right-most X-Forwarded-For entry that is not itself trusted (entries
   * to its left could be forged by the client).
   */
  clientAddress(peer: string | undefined, xff: string | undefined): string | undefined {
    if (!this.has(peer) || xff === undefined) return peer && unmapped(peer);
    const hops = xff
      .split(',')
      .map((h) => h.trim())
      .filter((h) => isIP(unmapped(h)) !== 0);
    for (let i = hops.length - 1; i >= 0; i--) if (!this.has(hops[i])) return unmapped(hops[i]!);
    return hops.length ? unmapped(hops[0]!) : peer && unmapped(peer);
  }
}

/** `::ffff:10.0.0.1` as `10.0.0.1`; other addresses as they are. */
export function unmapped(address: string): string {
  return address.startsWith('::ffff:') && isIP(address.slice(7)) === 4 ? address.slice(7) : address;
}
