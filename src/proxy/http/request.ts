/**
 * A request as both HTTP engines hand it to the shared policy: plain values,
 * no node:http objects. Header lists are flat `[name, value, name, value,
 * ...]` arrays as the parser produced them (names in the client's case,
 * values trimmed, Latin-1), so an engine never builds a header object it
 * does not need.
 */

/** One parsed request line and header block. */
export interface RequestHead {
  readonly method: string;
  /** The request target as sent: origin form, absolute form, `*` or an authority. */
  readonly target: string;
  readonly versionMajor: number;
  readonly versionMinor: number;
  /** Flat name/value pairs. */
  readonly headers: readonly string[];
  /** The parser saw `Connection: upgrade` with an `Upgrade` header (or CONNECT). */
  readonly upgrade: boolean;
  /** The client's keep-alive wish as the parser read it (version and Connection). */
  readonly keepAlive: boolean;
}

/** What the policy made of a head that may be forwarded. */
export interface CheckedRequest {
  /** Origin form: `/path?query`, or `*` for `OPTIONS *`. */
  readonly path: string;
  /** The Host to route on and send: the absolute-form authority when there is one; undefined for an HTTP/1.0 request without one (the backend's address is sent). */
  readonly host: string | undefined;
  /** True when `host` came from an absolute-form target (it replaces the Host header). */
  readonly hostFromTarget: boolean;
  /** The request has a body: a Content-Length above 0 or chunked framing. */
  readonly hasBody: boolean;
  /** The body is chunked (its length is not known in advance). */
  readonly chunked: boolean;
  /** The declared Content-Length, when the body is framed by one. */
  readonly contentLength: number | undefined;
  /** The upgrade tokens Drover would tunnel (h2c removed); empty for a plain request. */
  readonly upgradeTo: string;
  /** Expect: 100-continue was asked. */
  readonly expectContinue: boolean;
}

/** Why a request got a 502, 503 or 504 from Drover, as logged (rate-limited) and counted. */
export type FailureReason = 'no_backend' | 'queue_full' | 'queue_timeout' | 'upstream_failed' | 'upstream_timeout' | 'invalid_response';

/** A local answer Drover gives instead of a backend's: a refusal of the request, or a failure to get an answer. */
export interface Refusal {
  readonly status: number;
  readonly code: string;
  readonly message: string;
  /** For 502, 503 and 504: why, as the failure log names it. */
  readonly reason?: FailureReason;
}

/**
 * The value of header `lowerName` (already lower case): duplicates joined with
 * `, ` as node:http joins them, or undefined when absent.
 */
export function headerValue(headers: readonly string[], lowerName: string): string | undefined {
  let out: string | undefined;
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i]!;
    if (name.length === lowerName.length && name.toLowerCase() === lowerName) {
      out = out === undefined ? headers[i + 1]! : `${out}, ${headers[i + 1]!}`;
    }
  }
  return out;
}

/** RFC 9112 3.2 / RFC 3986: `uri-host [ ":" port ]`, a reg-name, IPv4 or bracketed IP literal; empty is allowed. */
const HOST = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~!$&'()*+,;=%]*)(?::[0-9]*)?$/;

/** Upgrade protocols Drover never tunnels: `h2c` would let a client speak HTTP/2 past every rule of the proxy (h2c smuggling). */
const NEVER_TUNNELLED = new Set(['h2c']);

/**
 * Checks what the parser accepted against what a proxy may forward. The
 * parser (strict llhttp) has already refused malformed syntax, CL+TE,
 * duplicate lengths and obs-fold; this refuses what is valid HTTP but not
 * forwardable: versions other than 1.x (an HTTP/0.9 request line), targets
 * other than origin or absolute form, CONNECT, transfer codings Drover cannot
 * decode. Returns the refusal, or what the engines need to forward it.
 */
export function checkRequest(head: RequestHead): CheckedRequest | Refusal {
  // Node's parser takes a request line without a version for HTTP/0.9; a
  // proxy must not upgrade that to HTTP/1.1 on the way to the backend.
  if (head.versionMajor !== 1) return refuse(400, 'DROVER_BAD_REQUEST', `HTTP/${head.versionMajor}.${head.versionMinor} is not supported`);
  if (head.method === 'CONNECT') return refuse(405, 'DROVER_METHOD_NOT_ALLOWED', 'CONNECT is not proxied');
  if (head.method === '') return refuse(501, 'DROVER_NOT_IMPLEMENTED', 'the request method is not supported');
  // RFC 9112 3.2: an HTTP/1.1 request without Host, or with two, gets 400.
  const hosts = countHeader(head.headers, 'host');
  if (hosts > 1 || (hosts === 0 && head.versionMinor >= 1)) return refuse(400, 'DROVER_BAD_REQUEST', hosts ? 'more than one Host header' : 'an HTTP/1.1 request needs a Host header');
  let path = head.target;
  let host = headerValue(head.headers, 'host');
  if (host !== undefined && !HOST.test(host)) return refuse(400, 'DROVER_BAD_REQUEST', 'invalid Host header');
  let hostFromTarget = false;
  // A fragment is never part of a request target (RFC 9112 3.2).
  if (path.includes('#')) return refuse(400, 'DROVER_BAD_REQUEST', 'invalid request target');
  if (!path.startsWith('/') && !(path === '*' && head.method === 'OPTIONS')) {
    let url: URL;
    try {
      url = new URL(path);
    } catch {
      return refuse(400, 'DROVER_BAD_REQUEST', 'invalid request target');
    }
    if ((url.protocol !== 'http:' && url.protocol !== 'https:') || !url.host || url.username || url.password) {
      return refuse(400, 'DROVER_BAD_REQUEST', 'invalid request target');
    }
    host = url.host;
    hostFromTarget = true;
    path = `${url.pathname}${url.search}`;
  }
  const te = headerValue(head.headers, 'transfer-encoding');
  let chunked = false;
  if (te !== undefined) {
    // RFC 9112 6.1: chunked not last means the body length is unknowable (400);
    // other codings before it are ones Drover does not decode (501).
    const codings = te.split(',').map((c) => c.trim().toLowerCase());
    if (codings[codings.length - 1] !== 'chunked') return refuse(400, 'DROVER_BAD_REQUEST', `invalid Transfer-Encoding "${te}"`);
    if (codings.length > 1) return refuse(501, 'DROVER_NOT_IMPLEMENTED', `transfer coding "${te}" is not supported`);
    // RFC 9112 6.1: chunked in an HTTP/1.0 message is faulty framing.
    if (head.versionMinor === 0) return refuse(400, 'DROVER_BAD_REQUEST', 'Transfer-Encoding in an HTTP/1.0 request');
    chunked = true;
  }
  const cl = chunked ? undefined : headerValue(head.headers, 'content-length');
  const contentLength = cl === undefined ? undefined : Number(cl);
  // llhttp takes lengths up to 2^64 - 1; past 2^53 a number is rounded, and a rounded length would let body bytes pass as a request.
  if (contentLength !== undefined && !Number.isSafeInteger(contentLength)) return refuse(400, 'DROVER_BAD_REQUEST', 'Content-Length too large');
  let upgradeTo = '';
  if (head.upgrade) {
    upgradeTo = (headerValue(head.headers, 'upgrade') ?? '')
      .split(',')
      .map((t) => t.trim())
      .filter((t) => t && !NEVER_TUNNELLED.has(t.toLowerCase().split('/')[0]!))
      .join(', ');
  }
  const expect = headerValue(head.headers, 'expect');
  // RFC 9110 10.1.1: an expectation other than 100-continue may be refused, and a proxy cannot promise it.
  if (expect !== undefined && expect.toLowerCase() !== '100-continue') return refuse(417, 'DROVER_EXPECTATION_FAILED', `expectation "${expect.slice(0, 60)}" is not supported`);
  return {
    path,
    host,
    hostFromTarget,
    hasBody: chunked || (contentLength !== undefined && contentLength > 0),
    chunked,
    contentLength,
    upgradeTo,
    expectContinue: expect !== undefined && expect.toLowerCase() === '100-continue',
  };
}

/** How many times header `lowerName` appears. */
function countHeader(headers: readonly string[], lowerName: string): number {
  let n = 0;
  for (let i = 0; i < headers.length; i += 2) if (headers[i]!.length === lowerName.length && headers[i]!.toLowerCase() === lowerName) n++;
  return n;
}

/** Whether checkRequest refused. */
export function isRefusal(r: CheckedRequest | Refusal): r is Refusal {
  return (r as Refusal).code !== undefined;
}

function refuse(status: number, code: string, message: string): Refusal {
  return { status, code, message };
}
