import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import { BlockList, isIP } from 'node:net';

/** Hop-by-hop headers (RFC 9110 7.6.1), never forwarded in either direction. */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'proxy-connection', 'proxy-authenticate', 'proxy-authorization']);

/** Headers a Connection header may not name away. */
const PROTECTED = new Set(['host', 'content-length', 'transfer-encoding']);

/**
 * Removes hop-by-hop headers and those the Connection header names. `Trailer`
 * must go: forwarded on a request without a chunked body it makes Node throw
 * ERR_HTTP_TRAILER_INVALID (node-http-proxy issue 1647). With `upgrade`, the
 * Connection/Upgrade pair is kept so the backend sees the upgrade.
 * Transfer-Encoding is dropped too: the outgoing request re-frames the body.
 */
export function withoutHopByHop(headers: IncomingHttpHeaders, upgrade = false): OutgoingHttpHeaders {
  const named = new Set(
    String(headers.connection ?? '')
      .split(',')
      .map((t) => t.trim().toLowerCase())
      // A client must not make Drover drop the headers that frame or route the request.
      .filter((t) => t && !PROTECTED.has(t)),
  );
  const out: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined) continue;
    if (upgrade && (name === 'connection' || name === 'upgrade')) {
      out[name] = value;
      continue;
    }
    if (HOP_BY_HOP.has(name) || named.has(name) || name.startsWith('proxy-')) continue;
    out[name] = value;
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
  clientAddress(peer: string | undefined, xff: string | string[] | undefined): string | undefined {
    if (!this.has(peer) || xff === undefined) return peer && unmapped(peer);
    const hops = (Array.isArray(xff) ? xff.join(',') : xff)
      .split(',')
      .map((h) => h.trim())
      .filter((h) => isIP(unmapped(h)) !== 0);
    for (let i = hops.length - 1; i >= 0; i--) if (!this.has(hops[i])) return unmapped(hops[i]!);
    return hops.length ? unmapped(hops[0]!) : peer && unmapped(peer);
  }
}

function unmapped(address: string): string {
  return address.startsWith('::ffff:') && isIP(address.slice(7)) === 4 ? address.slice(7) : address;
}

/**
 * The headers sent upstream: hop-by-hop removed, X-Forwarded-For appended
 * with the peer, X-Forwarded-Proto and -Host set (kept from a trusted peer).
 * Host is kept as the client sent it.
 */
export function forwardedHeaders(
  headers: IncomingHttpHeaders,
  peer: string | undefined,
  trusted: boolean,
  upgrade = false,
): OutgoingHttpHeaders {
  const out = withoutHopByHop(headers, upgrade);
  delete out.expect; // Drover answers 100-continue itself and sends the body whole.
  // RFC 7239 Forwarded from an untrusted client is a forgery waiting to be believed.
  if (!trusted) delete out.forwarded;
  const prior = headers['x-forwarded-for'];
  const peerAddress = peer ? unmapped(peer) : undefined;
  if (peerAddress) out['x-forwarded-for'] = prior ? `${Array.isArray(prior) ? prior.join(', ') : prior}, ${peerAddress}` : peerAddress;
  if (!trusted || !headers['x-forwarded-proto']) out['x-forwarded-proto'] = 'http';
  if (!trusted || !headers['x-forwarded-host']) {
    if (headers.host) out['x-forwarded-host'] = headers.host;
    else delete out['x-forwarded-host'];
  }
  return out;
}

/** Response headers for the client: hop-by-hop removed, and the backend's load report (meant for Drover, as in Envoy). */
export function responseHeaders(headers: IncomingHttpHeaders): OutgoingHttpHeaders {
  const out = withoutHopByHop(headers);
  delete out['endpoint-load-metrics'];
  return out;
}
