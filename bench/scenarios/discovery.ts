/**
 * Discovery: how long a znode change takes to reach the traffic. A real ZooKeeper (the test
 * fixture, from Debian's zookeeper package), Drover in HTTP mode following /bench/services/web
 * (plain host:port znodes), and a steady stream of requests from the bench process (keep-alive,
 * a few in flight) whose answers say which backend served them (`x-backend`).
 *
 * Per repetition: a second backend's znode is created, and the time from the create call to the
 * answer of the first request that backend served is taken; then the znode is deleted, and the
 * time from the delete call to the answer of the last request it served. Both are upper bounds:
 * they include one request's round trip (well under a millisecond here).
 */
import { Agent, request } from 'node:http';
import { performance } from 'node:perf_hooks';
import { startZooKeeper, zookeeperAvailable, type ZooKeeperServer } from '../../test/fixtures/zookeeper.js';
import { connectZk, zkClose, zkCreate, zkRemove, type ZkClient } from '../../test/fixtures/zk-client.js';
import { forkChild, sleep } from '../lib/procs.js';
import { spread, type Spread } from '../lib/stats.js';
import { startDrover } from '../lib/targets.js';

/** Repetitions and pauses of the discovery scenario. */
export interface DiscoveryPlan {
  repetitions: number;
  /** How long each phase (added, removed) lasts before the next change. */
  settleMs: number;
  /** Concurrent request loops of the traffic stream. */
  concurrency: number;
}

/** One repetition's figures, in ms. */
export interface DiscoveryRound {
  round: number;
  addMs: number;
  removeMs: number;
  /** Requests that failed during the repetition (should be 0). */
  errors: number;
  /** Requests answered during the repetition (the stream's rate sets the resolution). */
  requests: number;
}

/** The discovery scenario's result (skipped with a reason when ZooKeeper is not installed). */
export interface DiscoveryResult {
  skipped?: string;
  plan: DiscoveryPlan;
  addMs?: Spread;
  removeMs?: Spread;
  /** Requests per second of the traffic stream (the time resolution of the figures). */
  streamRps?: number;
  rounds: DiscoveryRound[];
}

interface Answer {
  sentAt: number;
  doneAt: number;
  backend: number;
}

/** A stream of keep-alive GETs; every answer is recorded with its backend. */
class Stream {
  readonly answers: Answer[] = [];
  errors = 0;
  private running = true;
  private readonly loops: Promise<void>[] = [];
  private readonly agent: Agent;

  constructor(
    private readonly port: number,
    concurrency: number,
  ) {
    this.agent = new Agent({ keepAlive: true, maxSockets: concurrency });
    for (let i = 0; i < concurrency; i++) this.loops.push(this.loop());
  }

  private async loop(): Promise<void> {
    while (this.running) {
      const sentAt = performance.now();
      try {
        const backend = await this.get();
        this.answers.push({ sentAt, doneAt: performance.now(), backend });
      } catch {
        this.errors++;
        await sleep(5);
      }
    }
  }

  private get(): Promise<number> {
    return new Promise((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port: this.port, path: '/small', agent: this.agent }, (res) => {
        res.resume();
        res.on('end', () => (res.statusCode === 200 ? resolve(Number(res.headers['x-backend'])) : reject(new Error(`status ${res.statusCode}`))));
      });
      req.on('error', reject);
      req.end();
    });
  }

  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
    this.agent.destroy();
  }
}

/** Waits until `test` holds, polling every ms; false after `timeoutMs`. */
async function until(test: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = performance.now() + timeoutMs;
  while (!test()) {
    if (performance.now() > deadline) return false;
    await sleep(1);
  }
  return true;
}

/** Runs the scenario; returns a skip reason when ZooKeeper cannot be started here. */
export async function discovery(plan: DiscoveryPlan, progress: (line: string) => void): Promise<DiscoveryResult> {
  const missing = zookeeperAvailable();
  if (missing) return { skipped: missing, plan, rounds: [] };
  let zk: ZooKeeperServer | undefined;
  let client: ZkClient | undefined;
  const backends = forkChild('discovery-backends', 'children/backend.js', ['fixed', '2']);
  try {
    const { ports } = (await backends.next('listening')) as { ports: number[] };
    const [a, b] = ports as [number, number];
    zk = await startZooKeeper();
    client = await connectZk(zk.connect);
    for (const p of ['/bench', '/bench/services', '/bench/services/web']) await zkCreate(client, p);
    await zkCreate(client, '/bench/services/web/a', `127.0.0.1:${a}`);
    const drover = await startDrover(
      'drover-discovery',
      `drainTimeout: 1s
logLevel: warn
zookeeper: { connect: "${zk.connect}", sessionTimeout: 10s }
services:
  web:
    zookeeper: /bench/services/web
listeners:
  - name: web
    mode: http
    bind: 127.0.0.1:0
    service: web
`,
    );
    const stream = new Stream(drover.ports.get('web')!, plan.concurrency);
    const rounds: DiscoveryRound[] = [];
    const started = performance.now();
    try {
      await sleep(500); // warm-up
      for (let round = 1; round <= plan.repetitions; round++) {
        const from = stream.answers.length;
        const errorsBefore = stream.errors;
        const t0 = performance.now();
        await zkCreate(client, '/bench/services/web/b', `127.0.0.1:${b}`);
        let scanned = from;
        let firstB: Answer | undefined;
        const reached = await until(() => {
          for (; scanned < stream.answers.length && !firstB; scanned++) if (stream.answers[scanned]!.backend === b) firstB = stream.answers[scanned];
          return firstB !== undefined;
        }, 10_000);
        if (!reached || !firstB) throw new Error('the new backend got no request within 10 s of its znode being created');
        await sleep(plan.settleMs);
        const mid = stream.answers.length;
        const t1 = performance.now();
        await zkRemove(client, '/bench/services/web/b');
        await sleep(plan.settleMs);
        const afterRemove = stream.answers.slice(mid);
        const lastB = afterRemove.filter((x) => x.backend === b).at(-1);
        const r: DiscoveryRound = {
          round,
          addMs: firstB.doneAt - t0,
          removeMs: lastB ? lastB.doneAt - t1 : 0,
          errors: stream.errors - errorsBefore,
          requests: stream.answers.length - from,
        };
        rounds.push(r);
        progress(`discovery round ${round}/${plan.repetitions}: create -> first request ${r.addMs.toFixed(1)} ms, delete -> last request ${r.removeMs.toFixed(1)} ms, errors ${r.errors}`);
      }
    } finally {
      await stream.stop();
      await drover.stop();
    }
    const elapsed = (performance.now() - started) / 1000;
    return {
      plan,
      addMs: spread(rounds.map((r) => r.addMs)),
      removeMs: spread(rounds.map((r) => r.removeMs)),
      streamRps: stream.answers.length / elapsed,
      rounds,
    };
  } finally {
    if (client) await zkClose(client);
    await zk?.destroy();
    await backends.stop();
  }
}
