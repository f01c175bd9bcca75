/**
 * Active health checks (src/health/active.ts, src/health/probe.ts) against
 * real sockets on 127.0.0.1: HTTP and TCP probes, rise/fall counting, what a
 * down member means for traffic (every strategy, startUnhealthy, no backend,
 * panic), member changes, jitter, and stop(). Backends run in this process
 * so each test controls what their checks see; every one answers proxied
 * requests with its own port (`x-backend`), as test/fixtures/http-backend.ts does.
 */
import assert from 'node:assert/strict';
import { EventEmitter, once } from 'node:events';
import { createServer as createHttpServer, type IncomingHttpHeaders } from 'node:http';
import { createServer as createNetServer, type Server, type Socket } from 'node:net';
import { describe, it, type TestContext } from 'node:test';
import { ServiceBalancer } from '../../src/balancer/balancer.js';
import { DEFAULTS, type HealthCheckConfig } from '../../src/config/schema.js';
import { Drover } from '../../src/drover.js';
import { ActiveChecks, firstDelay, jitteredInterval, type CheckResult } from '../../src/health/active.js';
import { Logger } from '../../src/log.js';
import { strategies } from '../../strategies/index.js';
import { eventually, freePort, request, startProxy, tcpHandles } from '../fixtures/harness.js';

/** One check event with the member's live state as it was when the event fired. */
interface Seen extends CheckResult {
  readonly usable: boolean;
  readonly down: boolean;
}

/**
 * Records every `check` event of a checker, with the balancer's view of the
 * member at that moment, and hands them out in order per backend.
 */
class CheckLog {
  readonly all: Seen[] = [];
  private readonly read = new Map<string, number>();
  private readonly waiters = new Set<() => void>();

  constructor(checker: ActiveChecks, balancer: ServiceBalancer) {
    checker.on('check', (c: CheckResult) => {
      this.all.push({ ...c, usable: balancer.states.usable(c.backend), down: balancer.states.isDown(c.backend) });
      for (const w of [...this.waiters]) w();
    });
  }

  /** Checks of `backend` so far. */
  of(backend: string): Seen[] {
    return this.all.filter((c) => c.backend === backend);
  }

  /** The next check of `backend` not handed out yet (waiting for it if needed). */
  next(backend: string, limitMs = 5_000): Promise<Seen> {
    return new Promise((resolve, reject) => {
      const look = () => {
        const i = this.read.get(backend) ?? 0;
        const seen = this.of(backend);
        if (seen.length <= i) return false;
        this.read.set(backend, i + 1);
        this.waiters.delete(look);
        clearTimeout(timer);
        resolve(seen[i]!);
        return true;
      };
      const timer = setTimeout(() => {
        this.waiters.delete(look);
        reject(new Error(`no check of ${backend} within ${limitMs}ms`));
      }, limitMs);
      if (!look()) this.waiters.add(look);
    });
  }

  /**
   * The next check of `backend` whose result is `ok`, passing over others:
   * for the first result after the test changed what a backend answers, when a
   * probe may have been answered just before the change. Passing over results
   * that agree with the member's state does not change what the next ones
   * must count, since such a result only resets the opposite count.
   */
  async nextWith(backend: string, ok: boolean): Promise<Seen> {
    for (;;) {
      const c = await this.next(backend);
      if (c.ok === ok) return c;
    }
  }

  /** Forgets the checks of `backend` not handed out yet: next() waits for a new one. */
  skip(backend: string): void {
    this.read.set(backend, this.of(backend).length);
  }
}

/** An HTTP backend in this process whose check answers the test controls. */
interface HealthBackend {
  readonly port: number;
  readonly id: string;
  /** The status checks get. */
  status: number;
  /** Checks get no answer at all. */
  hang: boolean;
  /** Every check request: path and headers. */
  readonly probes: Array<{ url: string; headers: IncomingHttpHeaders }>;
  /** Proxied (non-check) requests served. */
  served: number;
  /** Check connections that have closed. */
  closed: number;
  /** Emits `probe` when a check arrives and `probe-closed` when its connection closes. */
  readonly events: EventEmitter;
  close(): Promise<void>;
}

/** Starts a backend that the test `t` closes when it ends. */
async function healthBackend(t: TestContext, status = 200): Promise<HealthBackend> {
  const events = new EventEmitter();
  let port = 0;
  const b: HealthBackend = {
    get port() {
      return port;
    },
    get id() {
      return `127.0.0.1:${port}`;
    },
    status,
    hang: false,
    probes: [],
    served: 0,
    closed: 0,
    events,
    async close() {
      server.closeAllConnections();
      server.close();
      if (server.listening) await once(server, 'close');
    },
  };
  const server = createHttpServer((req, res) => {
    if (req.headers['user-agent'] === 'drover-health-check') {
      b.probes.push({ url: req.url ?? '', headers: req.headers });
      req.socket.once('close', () => {
        b.closed++;
        events.emit('probe-closed');
      });
      events.emit('probe');
      if (b.hang) return;
      res.statusCode = b.status;
      res.end('check\n');
      return;
    }
    b.served++;
    res.setHeader('x-backend', String(port));
    res.end(String(port));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  port = (server.address() as { port: number }).port;
  t.after(() => b.close());
  return b;
}

/** A TCP port in this process that the test can close and open again (same port). */
interface TcpBackend {
  readonly port: number;
  readonly id: string;
  open(): Promise<void>;
  shut(): Promise<void>;
}

/** Opens a port that the test `t` closes when it ends. */
async function tcpBackend(t: TestContext): Promise<TcpBackend> {
  let server: Server | undefined;
  const sockets = new Set<Socket>();
  let port = 0;
  const b: TcpBackend = {
    get port() {
      return port;
    },
    get id() {
      return `127.0.0.1:${port}`;
    },
    async open() {
      const s = createNetServer((socket) => {
        sockets.add(socket);
        socket.on('error', () => {});
        socket.on('close', () => sockets.delete(socket));
        socket.end();
      });
      s.listen(port, '127.0.0.1');
      await once(s, 'listening');
      port = (s.address() as { port: number }).port;
      server = s;
    },
    async shut() {
      const s = server;
      server = undefined;
      if (!s) return;
      for (const socket of sockets) socket.destroy();
      s.close();
      await once(s, 'close');
    },
  };
  await b.open();
  t.after(() => b.shut());
  return b;
}

/** The running checker of `service`, and a log of its checks. */
function checksOf(proxy: { drover: Drover }, service: string): { checker: ActiveChecks; balancer: ServiceBalancer; log: CheckLog } {
  const checker = proxy.drover.health(service)?.checker;
  assert.ok(checker instanceof ActiveChecks, `${service} has a local active checker`);
  const balancer = proxy.drover.services.get(service)!;
  return { checker, balancer, log: new CheckLog(checker, balancer) };
}

/** The backend port that answered each of `n` requests (0 for a non-200 answer). */
async function hits(port: number, n: number, path = '/'): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const res = await request(port, { path });
    out.push(res.status === 200 ? Number(res.headers['x-backend']) : 0);
  }
  return out;
}

const quiet = () => new Logger('error', () => {});

/** A health-check config for checkers built directly (not through YAML). */
function checkConfig(overrides: Partial<HealthCheckConfig> = {}): HealthCheckConfig {
  return { ...DEFAULTS.service.healthCheck, interval: 100, timeout: 100, ...overrides };
}

function directBalancer(ports: number[]): ServiceBalancer {
  const b = new ServiceBalancer('direct', { label: 'round-robin', factory: strategies['round-robin']!, options: {} }, 0);
  b.update(ports.map((port) => ({ host: '127.0.0.1', port, weight: 1 })));
  return b;
}

describe('active health checks', () => {
  it('an HTTP check flips a backend down at exactly fall failures and up at exactly rise successes', async (t) => {
    const a = await healthBackend(t, 200);
    const proxy = await startProxy(`
services:
  svc:
    static: [127.0.0.1:${a.port}]
    healthCheck: { type: http, path: /healthz, interval: 100ms, timeout: 100ms, rise: 2, fall: 3 }
listeners: [ { mode: http, bind: 127.0.0.1:0, service: svc } ]`, 'info');
    try {
      const { log } = checksOf(proxy, 'svc');
      const first = await log.next(a.id);
      assert.deepEqual([first.ok, first.up, first.usable], [true, true, true]);
      assert.equal(first.service, 'svc');

      a.status = 500;
      for (let i = 1; i <= 2; i++) {
        const c = await log.next(a.id);
        assert.deepEqual([c.ok, c.reason, c.up, c.usable, c.down], [false, 'status 500', true, true, false], `failure ${i} of 3: still up`);
      }
      const fell = await log.next(a.id);
      assert.deepEqual([fell.ok, fell.up, fell.usable, fell.down], [false, false, false, true], 'the 3rd failure takes it down');
      assert.equal((await request(proxy.port())).status, 503, 'its only backend is down');

      a.status = 200;
      const one = await log.nextWith(a.id, true); // a check answered during the request above may still say 500
      assert.deepEqual([one.ok, one.up, one.usable], [true, false, false], 'one success of 2: still down');
      const two = await log.next(a.id);
      assert.deepEqual([two.ok, two.up, two.usable, two.down], [true, true, true, false], 'the 2nd success brings it up');
      assert.equal(Number((await request(proxy.port())).headers['x-backend']), a.port);

      const changes = proxy.lines.filter((l) => l.msg === 'backend health changed');
      assert.deepEqual(
        changes.map((l) => [l.level, l.service, l.backend, l.up, l.reason]),
        [
          ['info', 'svc', a.id, false, 'status 500'],
          ['info', 'svc', a.id, true, 'passed 2 checks in a row'],
        ],
      );
    } finally {
      await proxy.stop();
    }
  });

  it('a failure while up resets the count: fall counts failures in a row only', async (t) => {
    const a = await healthBackend(t, 500);
    const proxy = await startProxy(`
services:
  svc:
    static: [127.0.0.1:${a.port}]
    healthCheck: { type: http, path: /healthz, interval: 100ms, timeout: 100ms, rise: 2, fall: 2 }
listeners: [ { mode: tcp, bind: 127.0.0.1:0, service: svc } ]`);
    try {
      const { log } = checksOf(proxy, 'svc');
      assert.deepEqual([(await log.next(a.id)).ok, (await log.next(a.id)).up], [false, false], 'two failures: down');
      a.status = 200;
      assert.equal((await log.next(a.id)).up, false, 'one success of 2');
      a.status = 500;
      assert.equal((await log.next(a.id)).up, false, 'a failure while down resets the successes');
      a.status = 200;
      assert.equal((await log.next(a.id)).up, false, 'counting starts again: one success of 2');
      assert.equal((await log.next(a.id)).up, true, 'two in a row: up');
      a.status = 500;
      assert.equal((await log.next(a.id)).up, true, 'one failure of 2');
      a.status = 200;
      assert.equal((await log.next(a.id)).up, true, 'a success while up resets the failures');
      a.status = 500;
      assert.equal((await log.next(a.id)).up, true, 'one failure of 2 again');
      assert.equal((await log.next(a.id)).up, false, 'two in a row: down');
    } finally {
      await proxy.stop();
    }
  });

  it('a TCP check flips a backend down at exactly fall refused connects and up at exactly rise accepted ones', async (t) => {
    const tb = await tcpBackend(t);
    const proxy = await startProxy(`
services:
  svc:
    static: [127.0.0.1:${tb.port}]
    healthCheck: { type: tcp, interval: 100ms, timeout: 100ms, rise: 3, fall: 2 }
listeners: [ { mode: tcp, bind: 127.0.0.1:0, service: svc } ]`);
    try {
      const { log } = checksOf(proxy, 'svc');
      const first = await log.next(tb.id);
      assert.deepEqual([first.ok, first.up, first.usable], [true, true, true]);

      await tb.shut();
      const f1 = await log.nextWith(tb.id, false);
      assert.deepEqual([f1.ok, f1.reason, f1.up, f1.usable], [false, 'ECONNREFUSED', true, true], 'failure 1 of 2: still up');
      const f2 = await log.next(tb.id);
      assert.deepEqual([f2.ok, f2.up, f2.usable, f2.down], [false, false, false, true], 'the 2nd failure takes it down');

      await tb.open();
      for (let i = 1; i <= 2; i++) {
        const c = i === 1 ? await log.nextWith(tb.id, true) : await log.next(tb.id);
        assert.deepEqual([c.ok, c.up, c.usable], [true, false, false], `success ${i} of 3: still down`);
      }
      const up = await log.next(tb.id);
      assert.deepEqual([up.ok, up.up, up.usable, up.down], [true, true, true, false], 'the 3rd success brings it up');
    } finally {
      await proxy.stop();
    }
  });

  it('a TCP check of an address that cannot be reached fails (timeout, or the error the network gives)', async () => {
    // 192.0.2.0/24 (TEST-NET-1) is never routed: the connect hangs until the timeout, or fails at once where there is no route.
    const balancer = new ServiceBalancer('t', { label: 'round-robin', factory: strategies['round-robin']!, options: {} }, 0);
    balancer.update([{ host: '192.0.2.1', port: 9, weight: 1 }]);
    const checker = new ActiveChecks('t', checkConfig({ type: 'tcp', interval: 100, timeout: 50, fall: 1 }), balancer, quiet(), () => 0);
    const log = new CheckLog(checker, balancer);
    checker.start();
    try {
      const c = await log.next('192.0.2.1:9');
      assert.equal(c.ok, false);
      assert.ok(c.reason === 'timeout' || /^E[A-Z]+$/.test(c.reason ?? ''), `reason ${c.reason}`);
      assert.equal(c.up, false, 'fall 1: down at once');
    } finally {
      checker.stop();
    }
  });

  it('a timed-out HTTP check counts as a failure', async (t) => {
    const a = await healthBackend(t, 200);
    a.hang = true;
    const proxy = await startProxy(`
services:
  svc:
    static: [127.0.0.1:${a.port}]
    healthCheck: { type: http, path: /healthz, interval: 60ms, timeout: 40ms, rise: 1, fall: 2 }
listeners: [ { mode: tcp, bind: 127.0.0.1:0, service: svc } ]`);
    try {
      const { log } = checksOf(proxy, 'svc');
      const c1 = await log.next(a.id);
      assert.deepEqual([c1.ok, c1.reason, c1.up], [false, 'timeout', true]);
      const c2 = await log.next(a.id);
      assert.deepEqual([c2.ok, c2.reason, c2.up, c2.usable], [false, 'timeout', false, false], 'two timeouts: down');
      await eventually(() => a.closed >= 2, 'the timed-out checks to close their connections', 2_000);
      a.hang = false;
      // A check already waiting on the hung backend may still time out; the first answered one brings it up (rise 1).
      assert.equal((await log.nextWith(a.id, true)).up, true);
    } finally {
      await proxy.stop();
    }
  });

  it('honours expect ranges and lists: 302 fails 200-299, "200,204" takes 204 and not 203', async (t) => {
    const a = await healthBackend(t, 302);
    const b = await healthBackend(t, 204);
    const proxy = await startProxy(`
services:
  ranged:
    static: [127.0.0.1:${a.port}]
    healthCheck: { type: http, path: /healthz, expect: 200-299, interval: 100ms, timeout: 100ms, rise: 1, fall: 1 }
  listed:
    static: [127.0.0.1:${b.port}]
    healthCheck: { type: http, path: /healthz, expect: "200,204", interval: 100ms, timeout: 100ms, rise: 1, fall: 1 }
listeners: [ { mode: tcp, bind: 127.0.0.1:0, service: ranged } ]`);
    try {
      const ranged = checksOf(proxy, 'ranged').log;
      const listed = checksOf(proxy, 'listed').log;
      assert.deepEqual(Object.values(pick(await ranged.next(a.id))), [false, 'status 302', false]);
      a.status = 299;
      assert.deepEqual(Object.values(pick(await ranged.next(a.id))), [true, undefined, true], '299 is inside 200-299');

      listed.skip(b.id); // the checks of b that came meanwhile: it is still answering 204
      assert.deepEqual(Object.values(pick(await listed.next(b.id))), [true, undefined, true], '204 is listed');
      b.status = 203;
      assert.deepEqual(Object.values(pick(await listed.next(b.id))), [false, 'status 203', false], '203 is between, not listed');
      b.status = 200;
      assert.deepEqual(Object.values(pick(await listed.next(b.id))), [true, undefined, true]);
    } finally {
      await proxy.stop();
    }
  });

  it('sends GET path with Host (the host key, else the member host:port), Connection: close and its User-Agent', async (t) => {
    const a = await healthBackend(t, 200);
    const b = await healthBackend(t, 200);
    const proxy = await startProxy(`
services:
  named:
    static: [127.0.0.1:${a.port}]
    healthCheck: { type: http, path: "/healthz?deep=1", host: health.example.com, interval: 100ms, timeout: 100ms }
  plain:
    static: [127.0.0.1:${b.port}]
    healthCheck: { type: http, path: /status, interval: 100ms, timeout: 100ms }
listeners: [ { mode: tcp, bind: 127.0.0.1:0, service: named } ]`);
    try {
      await Promise.all([checksOf(proxy, 'named').log.next(a.id), checksOf(proxy, 'plain').log.next(b.id)]);
      const pa = a.probes[0]!;
      assert.equal(pa.url, '/healthz?deep=1');
      assert.equal(pa.headers.host, 'health.example.com');
      assert.equal(pa.headers.connection, 'close');
      assert.equal(pa.headers['user-agent'], 'drover-health-check');
      const pb = b.probes[0]!;
      assert.equal(pb.url, '/status');
      assert.equal(pb.headers.host, `127.0.0.1:${b.port}`);
    } finally {
      await proxy.stop();
    }
  });

  it('a down backend is skipped by every strategy', async (t) => {
    const backends = await Promise.all([healthBackend(t), healthBackend(t), healthBackend(t)]);
    const [a, b, c] = backends as [HealthBackend, HealthBackend, HealthBackend];
    const names = [...Object.keys(strategies), 'custom'];
    const strategyOf = (name: string) => (name === 'custom' ? '{ module: ./config/strategies/weighted-random.js }' : name);
    const proxy = await startProxy(`
services:
${names
  .map(
    (name) => `  ${name}:
    static: [127.0.0.1:${a.port}, 127.0.0.1:${b.port}, 127.0.0.1:${c.port}]
    strategy: ${strategyOf(name)}
    healthCheck: { type: http, path: /healthz, interval: 100ms, timeout: 100ms, rise: 1, fall: 1 }`,
  )
  .join('\n')}
listeners:
  - mode: http
    bind: 127.0.0.1:0
    routes:
${names.map((name) => `      - { match: { pathPrefix: /${name}/ }, service: ${name} }`).join('\n')}`);
    try {
      const logs = new Map(names.map((name) => [name, checksOf(proxy, name).log]));
      assert.ok((await hits(proxy.port(), 6, '/round-robin/x')).includes(c.port), 'while healthy, c takes traffic');
      c.status = 503;
      for (const [name, log] of logs) {
        assert.equal((await log.nextWith(c.id, false)).up, false, `${name}: c is down`);
      }
      for (const name of names) {
        const got = await hits(proxy.port(), 12, `/${name}/x`);
        assert.ok(!got.includes(c.port), `${name} sent a request to the down backend: ${got.join(',')}`);
        assert.ok(got.every((p) => p === a.port || p === b.port), `${name}: every request served by a or b: ${got.join(',')}`);
      }
      assert.ok(
        (await hits(proxy.port(), 6, '/round-robin/x')).some((p) => p === a.port) && (await hits(proxy.port(), 6, '/round-robin/x')).some((p) => p === b.port),
        'round-robin still spreads over the healthy two',
      );
    } finally {
      await proxy.stop();
    }
  });

  it('with startUnhealthy a member gets no traffic until it passes rise checks', async (t) => {
    const a = await healthBackend(t, 200);
    const b = await healthBackend(t, 500);
    const proxy = await startProxy(`
services:
  svc:
    static: [127.0.0.1:${a.port}, 127.0.0.1:${b.port}]
    healthCheck: { type: http, path: /healthz, interval: 100ms, timeout: 100ms, rise: 3, fall: 1, startUnhealthy: true }
listeners: [ { mode: http, bind: 127.0.0.1:0, service: svc } ]`);
    try {
      const { balancer, log } = checksOf(proxy, 'svc');
      assert.deepEqual([balancer.states.isDown(a.id), balancer.states.isDown(b.id)], [true, true], 'both start down');
      const first = await log.next(a.id);
      assert.deepEqual([first.ok, first.up, first.usable], [true, false, false], 'success 1 of 3');
      const res = await request(proxy.port());
      assert.equal(res.status, 503);
      assert.equal(JSON.parse(res.body).error, 'DROVER_NO_BACKEND');
      assert.deepEqual([(await log.next(a.id)).up, (await log.next(a.id)).up], [false, true], 'up at the 3rd success');
      assert.deepEqual(await hits(proxy.port(), 6), Array(6).fill(a.port), 'a takes all traffic; b never passed');
      const bChecks = log.of(b.id);
      assert.ok(bChecks.length > 0 && bChecks.every((c) => !c.ok && !c.up), 'b failed every check and stayed down');
      assert.equal(b.served, 0, 'b never got a request');
    } finally {
      await proxy.stop();
    }
  });

  it('all members down answers 503 DROVER_NO_BACKEND; under panicThreshold traffic goes to every member', async (t) => {
    const members = await Promise.all([healthBackend(t, 200), healthBackend(t, 500), healthBackend(t, 500)]);
    const [a, b, c] = members as [HealthBackend, HealthBackend, HealthBackend];
    const checks = '{ type: http, path: /healthz, interval: 100ms, timeout: 100ms, rise: 1, fall: 1 }';
    const proxy = await startProxy(`
services:
  none:
    static: [127.0.0.1:${b.port}, 127.0.0.1:${c.port}]
    healthCheck: ${checks}
  panicky:
    static: [127.0.0.1:${a.port}, 127.0.0.1:${b.port}, 127.0.0.1:${c.port}]
    panicThreshold: 50%
    healthCheck: ${checks}
listeners:
  - mode: http
    bind: 127.0.0.1:0
    routes:
      - { match: { pathPrefix: /none }, service: none }
      - service: panicky`, 'info');
    try {
      const none = checksOf(proxy, 'none');
      const panicky = checksOf(proxy, 'panicky');
      await Promise.all([none.log.next(b.id), none.log.next(c.id), panicky.log.next(b.id), panicky.log.next(c.id)]);
      assert.deepEqual([none.balancer.states.isDown(b.id), none.balancer.states.isDown(c.id)], [true, true]);
      const res = await request(proxy.port(), { path: '/none' });
      assert.equal(res.status, 503);
      assert.equal(JSON.parse(res.body).error, 'DROVER_NO_BACKEND');
      assert.equal(res.headers['retry-after'], '1');

      // 1 of 3 healthy is below 50%: health is ignored and all three serve.
      assert.equal(panicky.balancer.states.inPanic(), true);
      const got = new Set(await hits(proxy.port(), 9));
      assert.deepEqual([...got].sort(), [a.port, b.port, c.port].sort(), 'in panic every member takes traffic');
      const panic = proxy.lines.find((l) => l.msg === 'backend panic');
      assert.ok(panic, 'the panic is logged');
      assert.deepEqual([panic.level, panic.service, panic.healthy, panic.members], ['warn', 'panicky', 1, 3]);
      assert.equal(none.balancer.states.inPanic(), false, 'no threshold, no panic');

      // 2 of 3 healthy is above 50%: out of panic, the down member is skipped again.
      b.status = 200;
      assert.equal((await panicky.log.nextWith(b.id, true)).up, true);
      assert.equal(panicky.balancer.states.inPanic(), false);
      const calm = new Set(await hits(proxy.port(), 8));
      assert.deepEqual([...calm].sort(), [a.port, b.port].sort());
      assert.ok(proxy.lines.some((l) => l.msg === 'backend calm' && l.service === 'panicky'));
    } finally {
      await proxy.stop();
    }
  });

  it('checks follow member changes: a removed member is no longer checked, its probe in flight is dropped, a new one is checked', async (t) => {
    const a = await healthBackend(t, 200);
    const b = await healthBackend(t, 200);
    const c = await healthBackend(t, 200);
    b.hang = true;
    const member = (port: number) => ({ host: '127.0.0.1', port, weight: 1 });
    const proxy = await startProxy(`
services:
  svc:
    static: [127.0.0.1:${a.port}, 127.0.0.1:${b.port}]
    healthCheck: { type: http, path: /healthz, interval: 100ms, timeout: 100ms, rise: 1, fall: 1 }
listeners: [ { mode: tcp, bind: 127.0.0.1:0, service: svc } ]`);
    try {
      const { checker, balancer, log } = checksOf(proxy, 'svc');
      assert.deepEqual(checker.checked().sort(), [a.id, b.id].sort());
      // b's first check hangs: the moment it arrives, b is removed as discovery would do it (update, then sync).
      const aborted = new Promise<void>((resolve) =>
        b.events.once('probe', () => {
          b.events.once('probe-closed', resolve);
          balancer.update([member(a.port), member(c.port)]);
          proxy.drover.health('svc')!.sync();
        }),
      );
      await aborted; // the probe's connection is closed at once, not at its timeout
      assert.deepEqual(checker.checked().sort(), [a.id, c.id].sort());
      const bChecks = log.of(b.id).length;
      assert.equal(bChecks, 0);

      const cFirst = await log.next(c.id);
      assert.deepEqual([cFirst.ok, cFirst.up], [true, true], 'the new member is checked');
      log.skip(a.id);
      for (let i = 0; i < 3; i++) await log.next(a.id); // three more rounds of a
      assert.equal(log.of(b.id).length, bChecks, 'no check of b after its removal');
      assert.ok(!balancer.states.ids().includes(b.id), 'the dropped probe left no state for b');
      const probesOfB = b.probes.length;
      await log.next(a.id);
      assert.equal(b.probes.length, probesOfB, 'b gets no more probes');

      // b comes back: it is checked again, from scratch.
      b.hang = false;
      balancer.update([member(a.port), member(b.port), member(c.port)]);
      proxy.drover.health('svc')!.sync();
      log.skip(b.id);
      assert.deepEqual([(await log.next(b.id)).ok], [true]);
    } finally {
      await proxy.stop();
    }
  });

  it('reconfigure applies new settings from the next probe on and keeps counters and states', async (t) => {
    const a = await healthBackend(t, 500);
    const balancer = directBalancer([a.port]);
    const config = checkConfig({ type: 'http', path: '/healthz', rise: 1, fall: 3 });
    const checker = new ActiveChecks('direct', config, balancer, quiet());
    const log = new CheckLog(checker, balancer);
    checker.start();
    try {
      assert.equal((await log.next(a.id)).up, true, 'failure 1 of 3');
      assert.equal((await log.next(a.id)).up, true, 'failure 2 of 3');
      checker.reconfigure({ ...config, path: '/other', expect: [[200, 299]] });
      const third = await log.next(a.id);
      assert.deepEqual([third.ok, third.up], [false, false], 'the count of 2 was kept: the 3rd failure takes it down');
      assert.equal(a.probes.at(-1)!.url, '/other', 'the new path is used');
      checker.reconfigure({ ...config, type: 'tcp' });
      const tcp = await log.next(a.id);
      assert.deepEqual([tcp.ok, tcp.up, tcp.down], [true, true, false], 'a TCP check passes where HTTP said 500');
    } finally {
      checker.stop();
    }
  });

  it('jitter: the first check comes at random × interval, later ones every 0.9 to 1.1 × interval', async () => {
    for (const r of [0, 0.25, 0.5, 0.999999]) {
      assert.equal(firstDelay(1000, () => r), r * 1000);
      const d = jitteredInterval(1000, () => r);
      assert.ok(d >= 900 && d <= 1100, `${r} → ${d}`);
    }
    assert.equal(jitteredInterval(1000, () => 0), 900);
    assert.equal(jitteredInterval(1000, () => 0.5), 1000);
    assert.ok(Math.abs(jitteredInterval(1000, () => 0.999999) - 1100) < 0.01);

    // Three members, whose random offsets put their first checks in the order 2nd, 3rd, 1st.
    const ports = [await freePort(), await freePort(), await freePort()];
    const balancer = directBalancer(ports);
    const ids = balancer.backends.map((x) => x.id);
    const offsets = [0.8, 0, 0.4];
    let calls = 0;
    const random = () => (calls < offsets.length ? offsets[calls++]! : 0.5);
    const checker = new ActiveChecks('direct', checkConfig({ interval: 400, timeout: 100 }), balancer, quiet(), random);
    const order: string[] = [];
    checker.on('check', (c: CheckResult) => void order.push(c.backend));
    checker.start();
    try {
      assert.equal(calls, 3, 'one random offset per member');
      await eventually(() => order.length >= 3, 'three first checks', 5_000);
      assert.deepEqual(order.slice(0, 3), [ids[1], ids[2], ids[0]]);
    } finally {
      checker.stop();
    }
  });

  it('stop() leaves no timer or socket behind, even with probes in flight', async (t) => {
    const timers = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    const a = await healthBackend(t, 200);
    const b = await healthBackend(t, 200);
    a.hang = true;
    b.hang = true;
    const sockets = tcpHandles();
    const timeouts = timers();
    const balancer = directBalancer([a.port, b.port]);
    const checker = new ActiveChecks('direct', checkConfig({ type: 'http', interval: 200, timeout: 200 }), balancer, quiet(), () => 0);
    t.after(() => checker.stop());
    const log = new CheckLog(checker, balancer);
    const probed = Promise.all([once(a.events, 'probe'), once(b.events, 'probe')]);
    checker.start();
    await probed; // both checks are waiting for an answer
    assert.ok(tcpHandles() > sockets);
    const closed = Promise.all([once(a.events, 'probe-closed'), once(b.events, 'probe-closed')]);
    checker.stop();
    await closed;
    await eventually(() => tcpHandles() === sockets, 'the probes’ sockets to close', 2_000);
    await eventually(() => timers() <= timeouts, 'the check timers to be cleared', 2_000);
    assert.deepEqual(checker.checked(), []);
    // No timer and no socket left: nothing can report a check any more.
    assert.equal(log.all.length, 0, 'no check result after stop');
    assert.equal(a.probes.length + b.probes.length, 2);
  });

  it('stopping Drover stops its checks', async (t) => {
    const a = await healthBackend(t, 200);
    const proxy = await startProxy(`
services:
  svc:
    static: [127.0.0.1:${a.port}]
    healthCheck: { type: http, path: /healthz, interval: 50ms, timeout: 50ms }
listeners: [ { mode: tcp, bind: 127.0.0.1:0, service: svc } ]`);
    let stopped = false;
    try {
      const { checker, log } = checksOf(proxy, 'svc');
      await log.next(a.id);
      await proxy.stop();
      stopped = true;
      assert.deepEqual(checker.checked(), []);
      const probes = a.probes.length;
      const checks = log.all.length;
      await new Promise((r) => setTimeout(r, 150));
      assert.equal(a.probes.length, probes, 'no probe after stop');
      assert.equal(log.all.length, checks, 'no check after stop');
    } finally {
      if (!stopped) await proxy.stop();
    }
  });
});

function pick(c: Seen): { ok: boolean; reason: string | undefined; up: boolean } {
  return { ok: c.ok, reason: c.reason, up: c.up };
}
