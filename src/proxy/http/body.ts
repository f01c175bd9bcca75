import type { IncomingMessage } from 'node:http';

/**
 * A request body as read before forwarding: whole (and so replayable), a
 * prefix with the rest still unread in the request stream, or nothing because
 * the client went away.
 */
export type Body = { kind: 'complete'; data: Buffer } | { kind: 'partial'; prefix: Buffer } | { kind: 'gone' };

/**
 * Reads up to `limit` bytes of `req`. A body that fits is held whole, so a
 * retry can send it again; a larger one stops at the limit with the rest left
 * paused in `req`, so memory stays bounded whatever the upload size.
 */
export function readBody(req: IncomingMessage, limit: number): Promise<Body> {
  const declared = req.headers['content-length'];
  if (declared === undefined && req.headers['transfer-encoding'] === undefined) return Promise.resolve({ kind: 'complete', data: Buffer.alloc(0) });
  if (declared === '0') {
    req.resume();
    return Promise.resolve({ kind: 'complete', data: Buffer.alloc(0) });
  }
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const done = (body: Body) => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('close', onClose);
      resolve(body);
    };
    const onData = (chunk: Buffer) => {
      chunks.push(chunk);
      size += chunk.length;
      if (size > limit) {
        req.pause();
        done({ kind: 'partial', prefix: Buffer.concat(chunks) });
      }
    };
    const onEnd = () => done({ kind: 'complete', data: Buffer.concat(chunks) });
    const onClose = () => {
      if (!req.complete) done({ kind: 'gone' });
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('close', onClose);
  });
}
