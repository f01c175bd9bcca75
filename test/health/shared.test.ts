import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once, type EventEmitter } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, describe, it } from 'node:test';
import { ServiceBalancer } from '../../src/balancer/balancer.js';
import type { HealthCheckConfig } from '../../src/config/schema.js';
import { CreateMode, ZooKeeperConnection } from '../../src/discovery/zk.js';
import { LeaderElection } from '../../src/health/election.js';
import { SharedChecks, type AppliedHealth, type PublishedHealth } from '../../src/health/shared.js';
import { Logger } from '../../src/log.js';
import { strategies } from '../../strategies/index.js';
import { ROOT } from '../fixtures/harness.js';
import { expireSession, startZooKeeper, zookeeperAvailable, type ZooKeeperServer } from '../fixtures/zookeeper.js';

const missing = zookeeperAvailable();

type Line = Record<string, unknown>;

/** A quiet logger that remembers its lines; `next(msg)` resolves on the next line with that message. */
function memoryLog(): Logger & { lines: Line[]; next(msg: string, limitMs?: number): Promise<Line> } {
  const lines: Line[] = [];
  const waiters = new Set<{ msg: string; resolve: (l: Line) => void }>();
  const log = new Logger('debug', (text) => {
    const line = JSON.parse(text) as Line;
    lines.push(line);
    for (const w of [...waiters]) {
      if (w.msg !== line.msg) continue;
      waiters.delete(w);
      w.resolve(line);
    }
  });
  const next = (msg: string, limitMs = 5000) =>
    new Promise<Line>((resolve, reject) => {
      const timer = setTimeout(() => {
        waiters.delete(w);
        reject(new Error(`timed out waiting for the log line "${msg}"`));
      }, limitMs);
      const w = {
        msg,
        resolve: (l: Line) => {
          clearTimeout(timer);
          resolve(l);
        },
      };
      waiters.add(w);
    });
  return Object.assign(log, { lines, next });
}

/** Resolves with the first argument of the next `event` for which `test` holds; rejects after `limitMs`. */
function next<T = unknown>(emitter: EventEmitter, event: string, test: (value: T) => boolean = () => true, limitMs = 10_000): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      emitter.off(event, on);
      reject(new Error(`timed out waiting for ${event}`));
    }, limitMs);
    const on = (value: T) => {
      if (!test(value)) return;
      clearTimeout(timer);
      emitter.off(event, on);
      resolve(value);
    };
    emitter.on(event, on);
  });
}

const rr = { label: 'round-robin', factory: strategies['round-robin']!, options: {} };
const member = (port: number) => ({ host: '127.0.0.1', port, weight: 1 });
/** Probes that cannot flip anything while a test runs: the tests here are about what is published. */
const QUIET: HealthCheckConfig = { type: 'tcp', path: '/', expect: [[200, 399]], interval: 60_000, timeout: 1000, rise: 10, fall: 10, startUnhealthy: false, shared: true };

describe('shared health checks', { skip: missing }, () => {
  let server: ZooKeeperServer;
  let writer: ZooKeeperConnection;
  const connections: ZooKeeperConnection[] = [];
  const stoppers: Array<() => Promise<void>> = [];

  before(async () => {
    server = await startZooKeeper();
    writer = new ZooKeeperConnection({ connect: server.connect, sessionTimeout: 5000, auth: [] });
  });
  after(async () => {
    for (const stop of stoppers) await stop();
    for (const zk of connections) zk.close();
    writer.close();
    await server.destroy();
  });

  function connection(): ZooKeeperConnection {
    const zk = new ZooKeeperConnection({ connect: server.connect, sessionTimeout: 4000, auth: [] });
    connections.push(zk);
    return zk;
  }

  function shared(service: string, ports: number[], instance: string, log = memoryLog()) {
    const balancer = new ServiceBalancer(service, rr, 0);
    balancer.update(ports.map(member));
    const zk = connection();
    const checks = new SharedChecks(service, QUIET, balancer, zk, log, instance);
    stoppers.push(() => checks.stop());
    return { balancer, zk, checks, log };
  }

  async function publish(service: string, body: string): Promise<void> {
    const path = `/drover/health/${service}`;
    await writer.mkdirp('/drover/health');
    if (await writer.exists(path)) await writer.setData(path, Buffer.from(body));
    else await writer.create(path, Buffer.from(body), CreateMode.PERSISTENT);
  }

  it('a follower applies the published down-list, ignores unreadable data, and applies it to new members', async () => {
    // Someone else leads this election (and publishes nothing by itself).
    const other = new LeaderElection(connection(), 'web-follow', 'other', memoryLog());
    stoppers.push(() => other.stop());
    const led = next(other, 'leader');
    other.start();
    await led;

    const { balancer, checks, log } = shared('web-follow', [1001, 1002], 'me');
    const roles: string[] = [];
    checks.on('role', (r: string) => roles.push(r));
    let probes = 0;
    checks.on('check', () => probes++);
    const following = next(checks, 'role');
    checks.start();
    assert.equal(await following, 'follower');

    let applied = next<AppliedHealth>(checks, 'applied');
    await publish('web-follow', JSON.stringify({ leader: 'other', at: Date.now(), down: ['127.0.0.1:1001'] }));
    assert.deepEqual((await applied).changed, ['127.0.0.1:1001']);
    assert.equal(balancer.states.isDown('127.0.0.1:1001'), true);
    assert.equal(balancer.states.isDown('127.0.0.1:1002'), false);

    // Garbage and wrong shapes: logged once each, never applied, nothing crashes.
    for (const bad of ['{"leader": "other", "down": [', '{"leader":"other","at":1,"down":"127.0.0.1:1002"}', '[]']) {
      const warned = log.next('shared checks: ignoring unreadable published health');
      await publish('web-follow', bad);
      await warned;
    }
    assert.equal(log.lines.filter((l) => l.msg === 'shared checks: ignoring unreadable published health').length, 3);
    assert.equal(balancer.states.isDown('127.0.0.1:1001'), true);

    applied = next<AppliedHealth>(checks, 'applied');
    await publish('web-follow', JSON.stringify({ leader: 'other', at: Date.now(), down: ['127.0.0.1:1002', '127.0.0.1:1003'] }));
    assert.deepEqual([...(await applied).changed].sort(), ['127.0.0.1:1001', '127.0.0.1:1002']);
    assert.equal(balancer.states.isDown('127.0.0.1:1001'), false);
    assert.equal(balancer.states.isDown('127.0.0.1:1002'), true);

    // A new member the leader already reported down is down here as soon as it arrives.
    balancer.update([1001, 1002, 1003].map(member));
    checks.sync();
    assert.equal(balancer.states.isDown('127.0.0.1:1003'), true);

    // With an `up` list, a member the leader has not seen yet keeps the state it started with.
    applied = next<AppliedHealth>(checks, 'applied');
    await publish('web-follow', JSON.stringify({ leader: 'other', at: Date.now(), down: [], up: ['127.0.0.1:1001', '127.0.0.1:1002'] }));
    assert.deepEqual([...(await applied).changed].sort(), ['127.0.0.1:1002']);
    assert.equal(balancer.states.isDown('127.0.0.1:1003'), true, 'not in either list: unchanged');

    assert.deepEqual(roles, ['follower']);
    assert.equal(checks.isLeader, false);
    assert.equal(probes, 0, 'followers do not probe');
  });

  it('the leader publishes its down-list on election; on its session expiry the next leader takes over from there', async () => {
    const a = shared('web-lead', [2001, 2002], 'instance-a');
    a.balancer.states.setDown('127.0.0.1:2001', true);
    const published = next<PublishedHealth>(a.checks, 'published');
    const aLeads = next(a.checks, 'role');
    a.checks.start();
    assert.equal(await aLeads, 'leader');
    assert.deepEqual((await published).down, ['127.0.0.1:2001']);
    const stored = JSON.parse((await writer.getData('/drover/health/web-lead')).data!.toString()) as PublishedHealth;
    assert.equal(stored.leader, 'instance-a');
    assert.deepEqual(stored.down, ['127.0.0.1:2001']);
    assert.ok(Math.abs(stored.at - Date.now()) < 10_000);

    // Someone writes over the leader's view: the leader writes its own again.
    const repaired = next<PublishedHealth>(a.checks, 'published');
    await publish('web-lead', JSON.stringify({ leader: 'stale', at: Date.now(), down: ['127.0.0.1:2001', '127.0.0.1:2002'] }));
    assert.deepEqual((await repaired).down, ['127.0.0.1:2001']);
    assert.equal((JSON.parse((await writer.getData('/drover/health/web-lead')).data!.toString()) as PublishedHealth).leader, 'instance-a');

    // A second instance follows and takes the leader's view.
    const b = shared('web-lead', [2001, 2002], 'instance-b');
    const bFollows = next(b.checks, 'role');
    const bApplied = next<AppliedHealth>(b.checks, 'applied', (x) => x.leader === 'instance-a');
    b.checks.start();
    assert.equal(await bFollows, 'follower');
    await bApplied;
    assert.equal(b.balancer.states.isDown('127.0.0.1:2001'), true);

    // The leader's session expires: it steps down, b leads and publishes what it applied.
    const aStepsDown = next(a.checks, 'role', (r) => r === 'follower');
    const bLeads = next(b.checks, 'role', (r) => r === 'leader');
    const bPublished = next<PublishedHealth>(b.checks, 'published');
    const { id, password } = a.zk.session();
    await expireSession(server.connect, id, password);
    await Promise.all([aStepsDown, bLeads]);
    assert.equal(a.checks.isLeader, false);
    assert.equal(b.checks.isLeader, true);
    assert.deepEqual((await bPublished).down, ['127.0.0.1:2001']);
    const now = JSON.parse((await writer.getData('/drover/health/web-lead')).data!.toString()) as PublishedHealth;
    assert.equal(now.leader, 'instance-b');

    // b stops: a (rejoined as the only candidate) leads again.
    const aLeadsAgain = next(a.checks, 'role', (r) => r === 'leader');
    await b.checks.stop();
    await aLeadsAgain;
    assert.equal(b.checks.isLeader, false);
  });
});

// -----------------------------------------------------------------------------------------------
// Five real drover processes

interface Proc {
  readonly n: number;
  readonly child: ChildProcess;
  readonly lines: Line[];
  readonly exit: Promise<unknown>;
  /** Resolves with the first line (past or future) that `test` accepts. */
  waitFor(test: (l: Line) => boolean, what: string, limitMs?: number): Promise<Line>;
  count(msg: string): number;
  of(msg: string): Line[];
}

function startDrover(n: number, dir: string, yaml: string): Proc {
  const file = join(dir, `drover-${n}.yaml`);
  writeFileSync(file, yaml);
  const child = spawn(process.execPath, [join(ROOT, 'dist/src/cli.js'), '--config', file], { stdio: ['ignore', 'pipe', 'inherit'] });
  const lines: Line[] = [];
  const waiters = new Set<{ test: (l: Line) => boolean; resolve: (l: Line) => void }>();
  createInterface({ input: child.stdout! }).on('line', (text) => {
    const line = JSON.parse(text) as Line;
    lines.push(line);
    if (process.env.DROVER_TEST_LOG) process.stderr.write(`[${n}] ${text}\n`);
    for (const w of [...waiters]) {
      if (!w.test(line)) continue;
      waiters.delete(w);
      w.resolve(line);
    }
  });
  return {
    n,
    child,
    lines,
    exit: once(child, 'exit'),
    waitFor(test, what, limitMs = 10_000) {
      const seen = lines.find(test);
      if (seen) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          waiters.delete(w);
          reject(new Error(`drover ${n}: timed out waiting for ${what}`));
        }, limitMs);
        const w = {
          test,
          resolve: (l: Line) => {
            clearTimeout(timer);
            resolve(l);
          },
        };
        waiters.add(w);
      });
    },
    count: (msg) => lines.filter((l) => l.msg === msg).length,
    of: (msg) => lines.filter((l) => l.msg === msg),
  };
}

describe('five drover processes with shared checks', { skip: missing }, () => {
  let zk: ZooKeeperServer;
  let backend: Server;
  let backendPort: number;
  let healthy = true;
  /** When each health check arrived (ms). */
  const checks: number[] = [];
  const checkWaiters = new Set<{ count: number; resolve: () => void }>();
  const procs: Proc[] = [];
  let dir: string;

  before(async () => {
    zk = await startZooKeeper();
    dir = mkdtempSync(join(tmpdir(), 'drover-shared-'));
    backend = createServer((req, res) => {
      if (req.url === '/healthz' && req.headers['user-agent'] === 'drover-health-check') {
        checks.push(Date.now());
        for (const w of [...checkWaiters]) {
          if (checks.length < w.count) continue;
          checkWaiters.delete(w);
          w.resolve();
        }
      }
      res.statusCode = req.url === '/healthz' && !healthy ? 503 : 200;
      res.end('ok');
    });
    backend.listen(0, '127.0.0.1');
    await once(backend, 'listening');
    backendPort = (backend.address() as { port: number }).port;
  });
  after(async () => {
    for (const p of procs) {
      if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
      await p.exit;
    }
    backend.close();
    await zk.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  /** Resolves once `more` further health checks have arrived; with the time they took. */
  function moreChecks(more: number): Promise<number> {
    const started = Date.now();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`fewer than ${more} health checks in 10 s (is ActiveChecks implemented?)`)), 10_000);
      checkWaiters.add({
        count: checks.length + more,
        resolve: () => {
          clearTimeout(timer);
          resolve(Date.now() - started);
        },
      });
    });
  }

  /** Fifteen checks by one checker every 100 ms take about 1.5 s; by two or more, half that or less. */
  async function assertOneChecker(): Promise<void> {
    await moreChecks(1); // start the clock on a check
    const took = await moreChecks(15);
    assert.ok(took >= 1100, `15 health checks came in ${took} ms: more than one process is checking`);
  }

  it('elect one checker, mark the backend down everywhere, and hand over with one wake per death', async () => {
    const yaml = `
drainTimeout: 100ms
zookeeper:
  connect: ${zk.connect}
  sessionTimeout: 2s
services:
  web:
    static: [127.0.0.1:${backendPort}]
    healthCheck: { type: http, path: /healthz, interval: 100ms, timeout: 80ms, rise: 1, fall: 1, shared: true }
listeners:
  - name: web
    mode: http
    bind: 127.0.0.1:0
    service: web
`;
    const backendId = `127.0.0.1:${backendPort}`;
    for (let i = 0; i < 5; i++) procs.push(startDrover(i, dir, yaml));
    const roleLine = (l: Line) => l.msg === 'election: leader' || l.msg === 'election: following';
    const joined = await Promise.all(procs.map((p) => p.waitFor(roleLine, 'leader or following')));

    // Exactly one leader; the followers form one chain down from it.
    const leaders = joined.filter((l) => l.msg === 'election: leader');
    assert.equal(leaders.length, 1);
    const nodeOf = new Map(joined.map((l, i) => [i, l.node as string]));
    const chain = [joined.findIndex((l) => l.msg === 'election: leader')];
    for (let k = 1; k < 5; k++) {
      const successor = joined.findIndex((l) => l.predecessor === nodeOf.get(chain[k - 1]!));
      assert.ok(successor >= 0, `a candidate follows ${nodeOf.get(chain[k - 1]!)}`);
      chain.push(successor);
    }
    assert.equal(new Set(chain).size, 5);
    const p = chain.map((i) => procs[i]!);
    await assertOneChecker();
    assert.equal(procs.reduce((n, x) => n + x.count('election: leader'), 0), 1);

    // The backend fails its checks: every process marks it down, the followers from the leader's publication.
    healthy = false;
    const isDown = (l: Line) => l.msg === 'backend down' && l.backend === backendId && l.source === 'check';
    await Promise.all(procs.map((x) => x.waitFor(isDown, 'backend down')));
    const applied = (l: Line) => l.msg === 'shared checks: applied' && (l.changed as string[]).includes(backendId);
    await Promise.all(p.slice(1).map((f) => f.waitFor(applied, "the leader's result applied")));
    assert.equal(p[0]!.count('shared checks: applied'), 0);

    // SIGKILL the leader: its session ends after the session timeout; only its successor wakes and leads.
    const killedAt = Date.now();
    p[0]!.child.kill('SIGKILL');
    await p[0]!.exit;
    const newLeader = await p[1]!.waitFor((l) => l.msg === 'election: leader', 'the new leader', 8000);
    const handover = Date.now() - killedAt;
    assert.ok(handover < 5000, `leadership moved after ${handover} ms (session timeout 2 s)`);
    assert.equal(newLeader.node, nodeOf.get(chain[1]!));
    assert.deepEqual(
      p[1]!.of('election: predecessor gone').map((l) => l.predecessor),
      [nodeOf.get(chain[0]!)],
    );
    await assertOneChecker();

    // SIGTERM a middle follower: it deletes its node on the way out; only its successor re-links.
    const [, leader, middle, successor, last] = p as [Proc, Proc, Proc, Proc, Proc];
    const relinked = successor.waitFor((l) => l.msg === 'election: following' && l.predecessor === nodeOf.get(chain[1]!), 're-linking');
    middle.child.kill('SIGTERM');
    const [code] = (await middle.exit) as [number | null];
    assert.equal(code, 0);
    await relinked;
    assert.deepEqual(
      successor.of('election: predecessor gone').map((l) => l.predecessor),
      [nodeOf.get(chain[2]!)],
    );

    // The backend recovers: the remaining three mark it up (the new leader's checks, published).
    healthy = true;
    const isUp = (l: Line) => l.msg === 'backend up' && l.backend === backendId;
    await Promise.all([leader, successor, last].map((x) => x.waitFor(isUp, 'backend up')));

    // Over the whole run: two deaths, two wakes, each of the right process; two leaders in turn.
    assert.equal(procs.reduce((n, x) => n + x.count('election: predecessor gone'), 0), 2);
    assert.deepEqual(
      procs.map((x) => x.count('election: leader')),
      procs.map((x) => (x === p[0] || x === leader ? 1 : 0)),
    );
    assert.equal(last.count('election: following'), 1);
    assert.equal(leader.count('shared checks: leading: checking for every instance'), 1);
  });
});
