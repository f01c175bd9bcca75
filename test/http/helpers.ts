/** Helpers shared by the HTTP end-to-end tests (on top of test/fixtures/harness.ts). */
import { once } from 'node:events';
import { connect, type TestBackend } from '../fixtures/harness.js';

export type Message = Record<string, unknown>;

/**
 * Records every IPC message a backend sends from now on, next to the
 * harness's own queue (which `next()` consumes), so a test can both wait for
 * one message and check afterwards that some other message never came.
 */
export interface MessageLog {
  readonly all: Message[];
  /** Resolves with the first message (past or future) that satisfies `pred`. */
  until(pred: (m: Message) => boolean): Promise<Message>;
  /** Messages seen so far that satisfy `pred`. */
  filter(pred: (m: Message) => boolean): Message[];
}

export function watchMessages(backend: TestBackend): MessageLog {
  const all: Message[] = [];
  const waiters: Array<{ pred: (m: Message) => boolean; resolve: (m: Message) => void }> = [];
  backend.child.on('message', (m: Message) => {
    all.push(m);
    for (const w of waiters.filter((w) => w.pred(m))) {
      waiters.splice(waiters.indexOf(w), 1);
      w.resolve(m);
    }
  });
  return {
    all,
    until: (pred) =>
      new Promise((resolve) => {
        const seen = all.find(pred);
        if (seen) resolve(seen);
        else waiters.push({ pred, resolve });
      }),
    filter: (pred) => all.filter(pred),
  };
}

export interface RawResponse {
  /** Everything the server sent before it closed the connection (latin1). */
  text: string;
  /** The status code of the first response, or 0 when nothing came back. */
  status: number;
  /** Lower-case header names of the first response. */
  headers: Record<string, string>;
  /** The body of the first response (everything after its header block). */
  body: string;
}

/** Splits the first response out of raw bytes from a server. */
export function parseRaw(text: string): RawResponse {
  const end = text.indexOf('\r\n\r\n');
  if (end < 0) return { text, status: 0, headers: {}, body: '' };
  const [statusLine, ...lines] = text.slice(0, end).split('\r\n');
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const colon = line.indexOf(':');
    headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(statusLine ?? '')?.[1] ?? 0);
  return { text, status, headers, body: text.slice(end + 4) };
}

/**
 * Sends raw bytes on a fresh connection and collects everything the server
 * sends until the connection closes (for whatever reason: end, reset).
 */
export async function rawSend(port: number, bytes: string | Buffer): Promise<RawResponse> {
  const s = await connect(port, { allowHalfOpen: true });
  const chunks: Buffer[] = [];
  s.on('data', (c: Buffer) => chunks.push(c));
  s.on('error', () => {});
  s.on('end', () => s.end());
  const gone = once(s, 'close');
  s.write(bytes);
  await gone;
  return parseRaw(Buffer.concat(chunks).toString('latin1'));
}

export { startCli, type Cli } from '../fixtures/harness.js';
