/**
 * The answers Drover makes itself on HTTP listeners, the same from every
 * engine: a small JSON body `{"error":CODE,"message":...}` whose code is
 * stable (the README lists them).
 */

/** Reason phrases for the statuses Drover answers with itself. */
export const STATUS_TEXT: Readonly<Record<number, string>> = {
  400: 'Bad Request',
  404: 'Not Found',
  405: 'Method Not Allowed',
  408: 'Request Timeout',
  413: 'Content Too Large',
  417: 'Expectation Failed',
  431: 'Request Header Fields Too Large',
  500: 'Internal Server Error',
  501: 'Not Implemented',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
  504: 'Gateway Timeout',
};

/** One local answer, ready for an engine to write. */
export interface LocalAnswer {
  readonly status: number;
  readonly code: string;
  readonly body: string;
  /** Header pairs besides framing and Connection (Content-Type, Retry-After, X-Request-Id). */
  readonly headers: readonly string[];
}

/**
 * Builds a local answer. 503s carry `Retry-After: 1`; `requestId`, when
 * given, is echoed so a client can quote it against the logs.
 */
export function localAnswer(status: number, code: string, message: string, requestId?: string): LocalAnswer {
  const headers = ['content-type', 'application/json'];
  if (status === 503) headers.push('retry-after', '1');
  if (requestId !== undefined) headers.push('x-request-id', requestId);
  return { status, code, body: JSON.stringify({ error: code, message }), headers };
}

/**
 * The whole answer as HTTP/1.1 bytes (Latin-1), for an engine that writes to
 * a raw socket. `close` adds `Connection: close`.
 */
export function serializeAnswer(a: LocalAnswer, close: boolean): string {
  let head = `HTTP/1.1 ${a.status} ${STATUS_TEXT[a.status] ?? ''}\r\n`;
  for (let i = 0; i < a.headers.length; i += 2) head += `${a.headers[i]}: ${a.headers[i + 1]}\r\n`;
  return `${head}content-length: ${Buffer.byteLength(a.body)}\r\n${close ? 'connection: close\r\n' : ''}\r\n${a.body}`;
}

/**
 * What a request the parser refused gets: 431 for oversized headers, 408 for
 * headers slower than `timeouts.headers`, 400 for the rest (malformed lines,
 * ambiguous framing, obs-fold, bad chunks). `code` is the parser's error code.
 */
export function parseRefusal(code: string | undefined, message: string): { status: number; code: string; message: string } {
  if (code === 'HPE_HEADER_OVERFLOW') return { status: 431, code: 'DROVER_HEADERS_TOO_LARGE', message: 'request headers too large' };
  if (code === 'ERR_HTTP_REQUEST_TIMEOUT') return { status: 408, code: 'DROVER_REQUEST_TIMEOUT', message: 'request headers took too long' };
  return { status: 400, code: 'DROVER_BAD_REQUEST', message: `malformed request: ${code ?? message}` };
}
