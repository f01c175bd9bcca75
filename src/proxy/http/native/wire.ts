/**
 * HTTP/1.1 bytes as the native engine writes them. Everything here is a
 * Latin-1 string: header names and values come from llhttp, which admits
 * only bytes that are safe to write back (no CR, LF or NUL), and obs-text
 * survives unchanged when written as Latin-1.
 */

/** `name: value\r\n` for each flat pair. */
export function headerLines(headers: readonly string[]): string {
  let out = '';
  for (let i = 0; i < headers.length; i += 2) out += `${headers[i]}: ${headers[i + 1]}\r\n`;
  return out;
}

/** The framing line of a body sent upstream or down: a length, chunked, or none. */
export function framingLine(length: number | undefined, chunked: boolean): string {
  if (chunked) return 'transfer-encoding: chunked\r\n';
  return length === undefined ? '' : `content-length: ${length}\r\n`;
}

/** One chunk's size line (the data and its closing CRLF follow). */
export function chunkHead(size: number): string {
  return `${size.toString(16)}\r\n`;
}

/** The last chunk of a chunked body, with trailer fields. */
export function lastChunk(trailers: readonly string[] | undefined): string {
  return trailers && trailers.length ? `0\r\n${headerLines(trailers)}\r\n` : '0\r\n\r\n';
}

/** A reason phrase Node would write (RFC 9112: HTAB, SP, VCHAR, obs-text). */
export const VALID_REASON = /^[\t\x20-\x7e\x80-\xff]*$/;

/** `100 Continue`, sent when a client asked for it and its request will be forwarded. */
export const CONTINUE = 'HTTP/1.1 100 Continue\r\n\r\n';
