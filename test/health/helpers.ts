/** Helpers for the agent-check tests: tiny agents the test controls, reply events, request spreads. */
import { once } from 'node:events';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import type { AgentChecks, AgentEvent } from '../../src/health/agent.js';
import { Logger } from '../../src/log.js';
import { request } from '../fixtures/harness.js';

export interface TestAgent {
  readonly port: number;
  /**
   * What each new connection is answered with, as sent (include the newline
   * when wanted); undefined: answer nothing and leave the connection open.
   */
  reply: string | Buffer | undefined;
  /** Answer only after the client sent a line (to see agent.send arrive). */
  waitForLine: boolean;
  /** Connections accepted so far. */
  connections: number;
  /** Lines clients sent (with waitForLine). */
  readonly received: string[];
  close(): Promise<void>;
}

/** A tiny agent-check server on 127.0.0.1 that answers every connection with `reply` and closes. */
export async function startAgent(reply: string | Buffer | undefined = 'ready\n'): Promise<TestAgent> {
  const sockets = new Set<Socket>();
  const server = createServer((s) => {
    agent.connections++;
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
    const answer = () => {
      if (agent.reply !== undefined) s.end(agent.reply);
    };
    if (!agent.waitForLine) {
      s.resume();
      return answer();
    }
    let got = '';
    s.on('data', (d: Buffer) => {
      got += d.toString('utf8');
      const nl = got.indexOf('\n');
      if (nl < 0) return;
      agent.received.push(got.slice(0, nl));
      answer();
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const agent: TestAgent = {
    port: (server.address() as AddressInfo).port,
    reply,
    waitForLine: false,
    connections: 0,
    received: [],
    async close() {
      for (const s of sockets) s.destroy();
      server.close();
      await once(server, 'close');
    },
  };
  return agent;
}

/** Resolves with the next `reply` event for `backend` that passes `test`; rejects after `limitMs`. */
export function nextReply(checks: AgentChecks, backend: string, test: (e: AgentEvent) => boolean = () => true, limitMs = 5000): Promise<AgentEvent> {
  return new Promise((resolve, reject) => {
    const onReply = (e: AgentEvent) => {
      if (e.backend !== backend || !test(e)) return;
      checks.off('reply', onReply);
      clearTimeout(timer);
      resolve(e);
    };
    const timer = setTimeout(() => {
      checks.off('reply', onReply);
      reject(new Error(`no agent reply for ${backend} passing the test within ${limitMs} ms`));
    }, limitMs);
    checks.on('reply', onReply);
  });
}

/** Resolves once `backend`'s agent said exactly `text` and it was applied. */
export function applied(checks: AgentChecks, backend: string, text: string): Promise<AgentEvent> {
  return nextReply(checks, backend, (e) => 'reply' in e && e.text === text);
}

/** Sends `count` GET /echo requests, `concurrency` at a time; counts answers by backend port. */
export async function spread(port: number, count: number, concurrency = 4): Promise<Map<number, number>> {
  const seen = new Map<number, number>();
  let left = count;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (left > 0) {
        left--;
        const res = await request(port, { path: '/echo' });
        if (res.status !== 200) throw new Error(`status ${res.status}: ${res.body}`);
        const b = Number(res.headers['x-backend']);
        seen.set(b, (seen.get(b) ?? 0) + 1);
      }
    }),
  );
  return seen;
}

/** A quiet logger that keeps its lines, for asserting on them. */
export function memoryLog(): Logger & { lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const log = new Logger('debug', (line) => lines.push(JSON.parse(line) as Record<string, unknown>));
  return Object.assign(log, { lines });
}
