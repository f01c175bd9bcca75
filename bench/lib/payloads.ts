/** The response and request bodies every backend and peer serves, so all targets move the same bytes. */

/** The small answer: exactly 100 bytes, like a small JSON document. */
export const SMALL_BODY = '{"ok":true,"service":"bench","note":"a small answer of about one hundred bytes","pad":"xxxxxxxxxx"}\n';
/** Size of the large answer (`GET /64k`). */
export const LARGE_BYTES = 64 * 1024;
/** Size of the uploaded body (`POST /upload`). */
export const UPLOAD_BYTES = 1024 * 1024;
