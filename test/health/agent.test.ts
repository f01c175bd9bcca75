/**
 * Agent checks (HAProxy's agent-check protocol) and backend-reported load:
 * the reply parser, applying replies, the client against real agents on
 * 127.0.0.1 through a running proxy, ORCA headers, `drover agent` as a child
 * process, and the parsing behind registry load. ZooKeeper parts are in
 * agent-zk.test.ts.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, describe, it } from 'node:test';
import { ServiceBalancer } from '../../src/balancer/balancer.js';
import { BackendStates } from '../../src/balancer/state.js';
import { parseConfig } from '../../src/config/load.js';
import type { StrategyConfig } from '../../src/config/schema.js';
import { parseMember } from '../../src/discovery/formats.js';
import { UsageError } from '../../src/errors.js';
import {
  agentPercent,
  cpuTimes,
  hostCapacity,
  HostMeter,
  hostLoad,
  idleShare,
  parseAgentArgs,
  startAgentServer,
  type HostProbe,
} from '../../src/health/agent-server.js';
import { AgentChecks, applyAgentReply, parseAgentReply } from '../../src/health/agent.js';
import { parseRegisterArgs } from '../../src/registry/command.js';
import { strategies } from '../../strategies/index.js';
import { connect, eventually, freePort, readAll, readLine, request, ROOT, startHttpBackend, startProxy, type TestBackend } from '../fixtures/harness.js';
import { applied, memoryLog, nextReply, spread, startAgent, type TestAgent } from './helpers.js';

const CLI = join(ROOT, 'dist', 'src', 'cli.js');
const id = (port: number) => `127.0.0.1:${port}`;

describe('agent reply parser', () => {
  it('reads every word form', () => {
    const cases: Array<[string, object]> = [
      ['75%', { percent: 75 }],
      ['0%', { percent: 0 }],
      ['150%', { percent: 150 }],
      ['weight:3', { weight: 3 }],
      ['weight:0', { weight: 0 }],
      ['maxconn:30', { maxConn: 30 }],
      ['maxconn:0', { maxConn: 0 }],
      ['ready', { admin: 'ready' }],
      ['drain', { admin: 'drain' }],
      ['maint', { admin: 'maint' }],
      ['up', { op: 'up' }],
      ['down', { op: 'down' }],
      ['down #disk full', { op: 'down', reason: 'disk full' }],
      ['fail#bad  ', { op: 'down', reason: 'bad' }],
      ['stopped', { op: 'down' }],
      ['down fail stopped', { op: 'down' }],
      ['up #the reason only goes with down', { op: 'up' }],
      ['drain,50%\tmaxconn:10  up', { percent: 50, maxConn: 10, admin: 'drain', op: 'up' }],
      [' , \t75%,,', { percent: 75 }],
      ['DRAIN Weight:7 MAXCONN:2 Down #Upper Case Kept', { weight: 7, maxConn: 2, admin: 'drain', op: 'down', reason: 'Upper Case Kept' }],
      ['75%\r\n', { percent: 75 }],
      ['drain\nmaint', { admin: 'drain' }],
      ['50% 50%', { percent: 50 }],
      ['', {}],
      ['   ', {}],
      ['# only a note', {}],
    ];
    for (const [line, want] of cases) assert.deepEqual(parseAgentReply(line), want, JSON.stringify(line));
    const long = parseAgentReply(`down # ${'x'.repeat(500)}`);
    assert.ok(!(long instanceof Error) && long.reason?.length === 200, 'a long reason is cut to 200 characters');
  });

  it('rejects malformed replies, saying why', () => {
    const cases: Array<[string, RegExp]> = [
      ['abc', /unknown word "abc"/],
      ['upp', /unknown word "upp"/],
      ['150x%', /"150x%" is not a whole percentage 0-1000%/],
      ['1001%', /not a whole percentage/],
      ['7.5%', /not a whole percentage/],
      ['-5%', /not a whole percentage/],
      ['%', /not a whole percentage/],
      ['weight:-1', /weight must be a whole number 0-1000, got "-1"/],
      ['weight:1001', /weight must be a whole number/],
      ['weight:', /weight must be a whole number/],
      ['maxconn:x', /maxconn must be a whole number/],
      ['drain maint', /"drain" and "maint" conflict/],
      ['ready drain', /"ready" and "drain" conflict/],
      ['up down', /"up" and "down" conflict/],
      ['50% weight:2', /"50%" and "weight:2" conflict/],
      ['50% 60%', /conflict/],
      ['maxconn:1 maxconn:2', /conflict/],
      ['ready abc # fine otherwise', /unknown word "abc"/],
      [Buffer.from([0x00, 0x01, 0xff, 0xfe, 0x80]).toString('utf8'), /unknown word "\\u0000\\u0001/],
      [Buffer.from([0x1b, 0x5b, 0x32, 0x4a]).toString('latin1'), /unknown word/],
    ];
    for (const [line, message] of cases) {
      const r = parseAgentReply(line);
      assert.ok(r instanceof Error, `${JSON.stringify(line)} was accepted: ${JSON.stringify(r)}`);
      assert.match(r.message, message, JSON.stringify(line));
    }
  });
});

describe('applying agent replies', () => {
  it('sets reports, maxconn, holds and health, and leaves unmentioned state alone', () => {
    const states = new BackendStates();
    const b = 'h:1';
    const apply = (line: string) => {
      const r = parseAgentReply(line);
      assert.ok(!(r instanceof Error), line);
      applyAgentReply(states, b, r);
    };
    apply('drain');
    assert.deepEqual(states.drains(b), ['agent']);
    apply('75%');
    assert.deepEqual(states.drains(b), ['agent'], 'a percent reply keeps the drain');
    assert.equal(states.report(b)?.percent, 75);
    apply('maint');
    assert.deepEqual(states.drains(b), ['maint'], 'maint replaces drain');
    assert.equal(states.report(b)?.percent, 75, 'an admin reply keeps the report');
    apply('drain');
    assert.deepEqual(states.drains(b), ['agent'], 'drain replaces maint');
    apply('ready');
    assert.deepEqual(states.drains(b), []);
    apply('weight:4');
    assert.deepEqual({ ...states.report(b), at: 0 }, { weight: 4, at: 0 }, 'weight replaces percent');
    apply('down #gone');
    assert.equal(states.usable(b), false);
    apply('50%');
    assert.equal(states.usable(b), false, 'still down after a load-only reply');
    apply('up');
    assert.equal(states.usable(b), true);
    apply('maxconn:1');
    states.acquire(b);
    assert.equal(states.usable(b), false, 'at its maxconn');
    apply('');
    assert.equal(states.usable(b), false, 'an empty reply changes nothing');
    apply('maxconn:0');
    assert.equal(states.usable(b), true, 'maxconn:0 lifts the limit');
  });
});

const rr: StrategyConfig = { label: 'round-robin', factory: strategies['round-robin']!, options: {} };

describe('agent check client', () => {
  it('follows member changes, applies reloads from the next try, logs a member without a port once, and stops', async () => {
    const [x, y] = await Promise.all([startAgent('drain\n'), startAgent('maint\n')]);
    const bal = new ServiceBalancer('svc', rr, 0);
    const log = memoryLog();
    const checks = new AgentChecks('svc', { interval: 20, timeout: 20, send: '' }, bal, log);
    const [m1, m2] = [id(1001), id(1002)];
    try {
      bal.update([{ host: '127.0.0.1', port: 1001, weight: 1, agentPort: x.port }]);
      checks.start();
      await applied(checks, m1, 'drain');
      assert.deepEqual(bal.states.drains(m1), ['agent']);

      bal.update([
        { host: '127.0.0.1', port: 1001, weight: 1, agentPort: x.port },
        { host: '127.0.0.1', port: 1002, weight: 1 },
      ]);
      checks.sync();
      for (let i = 0; i < 4; i++) await applied(checks, m1, 'drain');
      const skipped = log.lines.filter((l) => l.msg === 'agent check skipped: no agent port' && l.backend === m2);
      assert.equal(skipped.length, 1, 'a member without any agent port is logged once');
      assert.equal(skipped[0]!.level, 'debug');

      // A reload gives the service a port: the member without its own gets asked there.
      checks.reconfigure({ interval: 20, timeout: 20, send: '', port: y.port });
      await applied(checks, m2, 'maint');
      assert.deepEqual(bal.states.drains(m2), ['maint']);

      // m1 leaves: its agent is not asked again.
      bal.update([{ host: '127.0.0.1', port: 1002, weight: 1 }]);
      checks.sync();
      await applied(checks, m2, 'maint');
      await applied(checks, m2, 'maint');
      const asked = x.connections;
      await applied(checks, m2, 'maint');
      await applied(checks, m2, 'maint');
      assert.equal(x.connections, asked, 'a removed member is not polled');

      // After stop nothing is asked and nothing reported. Absence cannot be awaited: watch for five intervals.
      checks.stop();
      const before = y.connections;
      let events = 0;
      checks.on('reply', () => events++);
      await new Promise((r) => setTimeout(r, 100));
      assert.equal(y.connections, before);
      assert.equal(events, 0);
    } finally {
      checks.stop();
      await Promise.all([x.close(), y.close()]);
    }
  });
});

describe('agent checks through the proxy', () => {
  let a: TestBackend;
  let b: TestBackend;
  let ga: TestAgent;
  let gb: TestAgent;
  before(async () => {
    [a, b, ga, gb] = await Promise.all([startHttpBackend(), startHttpBackend(), startAgent(), startAgent()]);
  });
  after(async () => {
    await Promise.all([a.stop(), b.stop(), ga.close(), gb.close()]);
  });

  /** Two HTTP members on 127.0.0.1, each with its own agent port. */
  const yaml = (strategy: string, agentA = ga.port, agentB = gb.port, agent = '{ interval: 50ms, timeout: 50ms }') => `
services:
  s:
    strategy: ${strategy}
    static:
      - { address: 127.0.0.1:${a.port}, agentPort: ${agentA} }
      - { address: 127.0.0.1:${b.port}, agentPort: ${agentB} }
    agent: ${agent}
listeners: [ { mode: http, bind: 127.0.0.1:0, service: s } ]`;

  /** Starts the proxy with both agents answering `ready` and waits until both were heard. */
  async function start(strategy = 'round-robin') {
    ga.reply = 'ready\n';
    gb.reply = 'ready\n';
    ga.waitForLine = false;
    const proxy = await startProxy(yaml(strategy));
    const checks = proxy.drover.health('s')!.agentChecks!;
    await Promise.all([applied(checks, id(a.port), 'ready'), applied(checks, id(b.port), 'ready')]);
    return { proxy, checks, states: proxy.drover.services.get('s')!.states, port: proxy.port() };
  }

  it('drain stops new requests to a member while its open request finishes; ready brings it back', async () => {
    const { proxy, checks, states, port } = await start();
    const [idA, idB] = [id(a.port), id(b.port)];
    try {
      // Round robin sends one of two slow requests to each member.
      const slow = [request(port, { path: '/slow?ms=800' }), request(port, { path: '/slow?ms=800' })];
      await eventually(() => states.active(idA) === 1 && states.active(idB) === 1, 'one open request on each member');
      ga.reply = 'drain\n';
      await applied(checks, idA, 'drain');
      assert.deepEqual(states.drains(idA), ['agent']);
      assert.equal(states.active(idA), 1, 'the open request is still running');
      const during = await spread(port, 20);
      assert.deepEqual([...during.keys()], [b.port], 'no new request reaches the drained member');
      const done = await Promise.all(slow);
      assert.deepEqual(done.map((r) => r.status), [200, 200]);
      assert.deepEqual(new Set(done.map((r) => Number(r.headers['x-backend']))), new Set([a.port, b.port]), 'the open request finished on the drained member');

      ga.reply = 'ready\n';
      await applied(checks, idA, 'ready');
      assert.deepEqual(states.drains(idA), []);
      const back = await spread(port, 20);
      assert.equal(back.get(a.port), 10);
      assert.equal(back.get(b.port), 10);
    } finally {
      await proxy.stop();
    }
  });

  it('maint takes a member out and ready brings it back', async () => {
    const { proxy, checks, states, port } = await start();
    const idA = id(a.port);
    try {
      ga.reply = 'maint\n';
      await applied(checks, idA, 'maint');
      assert.deepEqual(states.drains(idA), ['maint']);
      assert.deepEqual([...(await spread(port, 10)).keys()], [b.port]);
      ga.reply = 'READY\n';
      await applied(checks, idA, 'READY');
      assert.deepEqual(states.drains(idA), []);
      assert.equal((await spread(port, 10)).get(a.port), 5);
    } finally {
      await proxy.stop();
    }
  });

  it('down takes a member out and up brings it back', async () => {
    const { proxy, checks, states, port } = await start();
    const idA = id(a.port);
    try {
      ga.reply = 'down #disk full\n';
      const e = await applied(checks, idA, 'down #disk full');
      assert.ok('reply' in e);
      assert.deepEqual(e.reply, { op: 'down', reason: 'disk full' });
      assert.equal(states.usable(idA), false);
      assert.deepEqual(states.drains(idA), [], 'down is health, not an administrative hold');
      assert.deepEqual([...(await spread(port, 10)).keys()], [b.port]);
      ga.reply = 'up\n';
      await applied(checks, idA, 'up');
      assert.equal(states.usable(idA), true);
      assert.equal((await spread(port, 10)).get(a.port), 5);
    } finally {
      await proxy.stop();
    }
  });

  it('maxconn:1 lets a member hold one request at a time; maxconn:0 lifts the limit', async () => {
    const { proxy, checks, states, port } = await start();
    const idA = id(a.port);
    try {
      ga.reply = 'maxconn:1\n';
      await applied(checks, idA, 'maxconn:1');
      const slow = [request(port, { path: '/slow?ms=600' }), request(port, { path: '/slow?ms=600' })];
      const opened = () => states.active(idA) === 1 && states.active(id(b.port)) === 1;
      await eventually(opened, 'one open request on each member');
      assert.equal(states.usable(idA), false, 'at its maxconn');
      assert.deepEqual([...(await spread(port, 10)).keys()], [b.port], 'a member at its maxconn gets nothing new');
      await Promise.all(slow);
      assert.equal(states.usable(idA), true, 'below its maxconn again');

      ga.reply = 'maxconn:0\n';
      await applied(checks, idA, 'maxconn:0');
      const slow2 = [request(port, { path: '/slow?ms=600' }), request(port, { path: '/slow?ms=600' })];
      await eventually(opened, 'one open request on each member again');
      assert.equal((await spread(port, 10)).get(a.port), 5, 'no limit: the busy member keeps its share');
      await Promise.all(slow2);
    } finally {
      await proxy.stop();
    }
  });

  it('percent and weight replies change the agent-load share', async () => {
    const { proxy, checks, port } = await start('agent-load');
    const [idA, idB] = [id(a.port), id(b.port)];
    try {
      ga.reply = '50%\n';
      gb.reply = '100%\n';
      await Promise.all([applied(checks, idA, '50%'), applied(checks, idB, '100%')]);
      const half = await spread(port, 300);
      assert.ok(Math.abs((100 * half.get(a.port)!) / 300 - 100 / 3) <= 5, `50% against 100%: ${JSON.stringify([...half])}`);

      ga.reply = 'weight:3\n';
      gb.reply = 'weight:1\n';
      await Promise.all([applied(checks, idA, 'weight:3'), applied(checks, idB, 'weight:1')]);
      const three = await spread(port, 300);
      assert.ok(Math.abs((100 * three.get(a.port)!) / 300 - 75) <= 5, `weight:3 against weight:1: ${JSON.stringify([...three])}`);
    } finally {
      await proxy.stop();
    }
  });

  it('agent-load follows reported load: 100% against 25% shares about 4 to 1 over 500 requests', async () => {
    // Real `drover agent` servers in this process, their host measurement replaced by fixed capacities.
    const full = await startAgentServer({ listen: { host: '127.0.0.1', port: 0, id: '127.0.0.1:0' }, weight: 100, capacity: () => 1 });
    const busy = await startAgentServer({ listen: { host: '127.0.0.1', port: 0, id: '127.0.0.1:0' }, weight: 100, capacity: () => 0.25 });
    const portOf = (address: string) => Number(address.split(':').pop());
    const proxy = await startProxy(yaml('agent-load', portOf(full.address), portOf(busy.address)));
    const checks = proxy.drover.health('s')!.agentChecks!;
    try {
      await Promise.all([applied(checks, id(a.port), '100%'), applied(checks, id(b.port), '25%')]);
      const seen = await spread(proxy.port(), 500, 8);
      const shareA = (100 * (seen.get(a.port) ?? 0)) / 500;
      assert.ok(Math.abs(shareA - 80) <= 5, `expected about 80% on the idle member, got ${shareA}%`);
    } finally {
      await proxy.stop();
      await Promise.all([full.close(), busy.close()]);
    }
  });

  it('keeps unmentioned state: drain then 75% keeps draining', async () => {
    const { proxy, checks, states } = await start();
    const idA = id(a.port);
    try {
      ga.reply = 'drain\n';
      await applied(checks, idA, 'drain');
      ga.reply = '75%\n';
      await applied(checks, idA, '75%');
      assert.deepEqual(states.drains(idA), ['agent']);
      assert.equal(states.report(idA)?.percent, 75);
      ga.reply = 'maxconn:5\n';
      await applied(checks, idA, 'maxconn:5');
      assert.deepEqual(states.drains(idA), ['agent']);
      assert.equal(states.report(idA)?.percent, 75, 'the report stays when the reply has no load word');
    } finally {
      await proxy.stop();
    }
  });

  it('ignores and logs a malformed reply, keeping the last state', async () => {
    ga.reply = 'drain\n';
    gb.reply = 'ready\n';
    const proxy = await startProxy(yaml('round-robin'), 'debug');
    const checks = proxy.drover.health('s')!.agentChecks!;
    const states = proxy.drover.services.get('s')!.states;
    const idA = id(a.port);
    try {
      await Promise.all([applied(checks, idA, 'drain'), applied(checks, id(b.port), 'ready')]);
      const changes = proxy.lines.filter((l) => l.msg === 'agent changed backend state');
      assert.deepEqual(
        changes.map((l) => [l.level, l.backend, l.admin]),
        [['info', idA, 'drain']],
        'a drain is logged once at info; a first ready is no change',
      );
      let last: string | undefined;
      for (const bad of ['drain maint\n', 'abc\n', Buffer.from([0x00, 0xff, 0xfe, 0x0a]), 'x'.repeat(2000)]) {
        ga.reply = bad;
        const e = await nextReply(checks, idA, (ev) => 'error' in ev && ev.text !== undefined && ev.text !== last);
        last = e.text;
        await nextReply(checks, idA, (ev) => 'error' in ev && ev.text === last);
        assert.deepEqual(states.drains(idA), ['agent'], `state kept after ${JSON.stringify(e.text)}`);
      }
      const logged = proxy.lines.filter((l) => l.msg === 'agent reply ignored');
      const conflicts = logged.filter((l) => l.reply === 'drain maint');
      assert.deepEqual(
        conflicts.map((l) => l.level).slice(0, 2),
        ['warn', 'debug'],
        'the first bad reply warns, the same one again is logged at debug',
      );
      assert.equal(conflicts.filter((l) => l.level === 'warn').length, 1);
      const [conflict] = conflicts;
      assert.deepEqual(
        { service: conflict!.service, backend: conflict!.backend, reason: conflict!.reason },
        { service: 's', backend: idA, reason: '"drain" and "maint" conflict' },
      );
      assert.ok(logged.some((l) => l.level === 'warn' && l.reply === 'abc' && /unknown word/.test(String(l.reason))));
      assert.ok(logged.some((l) => l.level === 'warn' && /^\u0000/.test(String(l.reply))), 'binary junk is refused');
      assert.ok(logged.some((l) => l.level === 'warn' && /longer than 1024 bytes/.test(String(l.reason))), 'an over-long reply is refused');
    } finally {
      await proxy.stop();
    }
  });

  it('leaves a member usable when its agent is unreachable or silent', async () => {
    const nobody = await freePort();
    gb.reply = undefined; // accepts, never answers
    const proxy = await startProxy(yaml('round-robin', nobody, gb.port), 'debug');
    const checks = proxy.drover.health('s')!.agentChecks!;
    const states = proxy.drover.services.get('s')!.states;
    const [idA, idB] = [id(a.port), id(b.port)];
    try {
      const refused = await nextReply(checks, idA, (e) => 'error' in e);
      const silent = await nextReply(checks, idB, (e) => 'error' in e);
      assert.ok('error' in refused && /ECONNREFUSED/.test(refused.error.message), String('error' in refused && refused.error.message));
      assert.ok('error' in silent && /no reply within 50 ms/.test(silent.error.message));
      for (const b of [idA, idB]) {
        assert.equal(states.usable(b), true);
        assert.deepEqual(states.drains(b), []);
      }
      const seen = await spread(proxy.port(), 10);
      assert.equal(seen.get(a.port), 5);
      assert.equal(seen.get(b.port), 5);
      const line = proxy.lines.find((l) => l.msg === 'agent unreachable: nothing changed' && l.backend === idA);
      assert.equal(line?.level, 'debug');
      assert.ok(!proxy.lines.some((l) => l.level === 'warn' || l.level === 'error'), 'nothing louder than debug');
    } finally {
      await proxy.stop();
      gb.reply = 'ready\n';
    }
  });

  it("uses a member's own agentPort over the service's port, so two members on one host have separate agents", async () => {
    const shared = await startAgent('maint\n');
    ga.reply = 'drain\n';
    gb.reply = 'ready\n';
    const proxy = await startProxy(yaml('round-robin', ga.port, gb.port, `{ port: ${shared.port}, interval: 50ms, timeout: 50ms }`));
    const checks = proxy.drover.health('s')!.agentChecks!;
    const states = proxy.drover.services.get('s')!.states;
    try {
      await Promise.all([applied(checks, id(a.port), 'drain'), applied(checks, id(b.port), 'ready')]);
      assert.deepEqual(states.drains(id(a.port)), ['agent']);
      assert.deepEqual(states.drains(id(b.port)), []);
      assert.equal(shared.connections, 0, "the service's port is not asked");
    } finally {
      await proxy.stop();
      await shared.close();
    }
  });

  it('sends agent.send with a newline added, and ignores a line the agent cut off before its newline', async () => {
    ga.reply = 'maxconn:10';
    ga.waitForLine = true;
    const cut = await startProxy(yaml('round-robin', ga.port, gb.port, '{ interval: 50ms, timeout: 50ms, send: "status please" }'));
    try {
      const e = await nextReply(cut.drover.health('s')!.agentChecks!, id(a.port), (ev) => 'error' in ev);
      assert.match(String((e as { error?: Error }).error?.message), /incomplete line/);
      assert.equal(cut.drover.services.get('s')!.states.usable(id(a.port)), true);
    } finally {
      await cut.stop();
    }
    ga.reply = 'drain\n';
    ga.waitForLine = true;
    const proxy = await startProxy(yaml('round-robin', ga.port, gb.port, '{ interval: 50ms, timeout: 50ms, send: "status please" }'));
    const checks = proxy.drover.health('s')!.agentChecks!;
    try {
      await applied(checks, id(a.port), 'drain');
      assert.equal(ga.received[ga.received.length - 1], 'status please');
      assert.deepEqual(proxy.drover.services.get('s')!.states.drains(id(a.port)), ['agent']);
    } finally {
      await proxy.stop();
      ga.waitForLine = false;
    }
  });

  it('turning agent checks off by reload lifts what the agents set', async () => {
    const { proxy, checks, states } = await start();
    const idA = id(a.port);
    try {
      ga.reply = 'drain down maxconn:1\n';
      await applied(checks, idA, 'drain down maxconn:1');
      assert.equal(states.usable(idA), false);
      const without = yaml('round-robin').replace(/\n {4}agent: .*\n/, '\n').replace(/, agentPort: \d+/g, '');
      await proxy.drover.reload(await parseConfig(without, `${ROOT}test-config.yaml`, 'test-config.yaml'));
      assert.equal(proxy.drover.health('s')!.agentChecks, undefined);
      assert.deepEqual(states.drains(idA), []);
      assert.equal(states.usable(idA), true);
    } finally {
      await proxy.stop();
    }
  });
});

describe('ORCA load reports', () => {
  let a: TestBackend;
  before(async () => {
    a = await startHttpBackend();
  });
  after(() => a.stop());

  it('an endpoint-load-metrics header sets the report and is not passed to the client; a malformed one is ignored', async () => {
    const proxy = await startProxy(`
services: { s: { static: [127.0.0.1:${a.port}], strategy: agent-load } }
listeners: [ { mode: http, bind: 127.0.0.1:0, service: s } ]`);
    const states = proxy.drover.services.get('s')!.states;
    const idA = id(a.port);
    try {
      const bad = await request(proxy.port(), { path: '/load?cpu=abc' });
      assert.equal(bad.status, 200);
      assert.equal(bad.headers['endpoint-load-metrics'], undefined);
      assert.equal(states.report(idA), undefined, 'a malformed header sets nothing');
      const res = await request(proxy.port(), { path: '/load?cpu=0.8' });
      assert.equal(res.status, 200);
      assert.equal(res.headers['endpoint-load-metrics'], undefined, 'the header stays between proxy and backend');
      assert.equal(states.report(idA)?.percent, 20);
      const kept = states.report(idA);
      await request(proxy.port(), { path: '/load?cpu=0.3,mem' });
      assert.equal(states.report(idA), kept, 'a malformed header leaves the last report');
    } finally {
      await proxy.stop();
    }
  });
});

describe('drover agent', () => {
  it('computes spare capacity from injected CPU and load numbers', () => {
    const core = (idle: number, busy: number) => ({ model: 'x', speed: 1, times: { user: busy, nice: 0, sys: 0, idle, irq: 0 } });
    assert.deepEqual(cpuTimes([core(100, 300), core(50, 50)]), { idle: 150, total: 500 });
    assert.equal(idleShare({ idle: 150, total: 500 }, { idle: 250, total: 900 }), 0.25);
    assert.equal(idleShare({ idle: 1, total: 2 }, { idle: 1, total: 2 }), undefined, 'no time passed');

    assert.equal(hostCapacity({ load1: 1, parallelism: 4 }), 0.75, 'load average alone before the first CPU sample');
    assert.equal(hostCapacity({ idle: 0.5, load1: 1, parallelism: 4 }), 0.5, 'the smaller of the two');
    assert.equal(hostCapacity({ idle: 0.9, load1: 3, parallelism: 4 }), 0.25);
    assert.equal(hostCapacity({ idle: 0.9, load1: 9, parallelism: 4 }), 0, 'never below 0');
    assert.equal(hostCapacity({ idle: 0.4, load1: NaN, parallelism: 4 }), 0.4, 'an unreadable load average is ignored');

    assert.equal(agentPercent(100, 0.5), 50);
    assert.equal(agentPercent(100, 1), 100);
    assert.equal(agentPercent(50, 1 / 3), 17);
    assert.equal(agentPercent(100, 0), 1, 'an overloaded host still gets a trickle');
    assert.equal(agentPercent(3, 0.1), 1);
    assert.equal(hostLoad(0.25), 0.75);
    assert.equal(hostLoad(1 / 3), 0.67);
    assert.equal(hostLoad(1), 0);

    let times = [core(0, 0)];
    const probe: HostProbe = { cpus: () => times, loadavg: () => [1, 1, 1], parallelism: () => 2 };
    const meter = new HostMeter(probe, 60_000).start();
    try {
      assert.equal(meter.capacity(), 0.5, 'load average only until a CPU delta exists');
      times = [core(90, 10)];
      meter.tick();
      assert.equal(meter.capacity(), 0.5, 'min(0.9 idle, 0.5 by load)');
      times = [core(100, 100)];
      meter.tick();
      assert.equal(meter.capacity(), 0.1, 'the last delta only: 10 idle of 100');
    } finally {
      meter.stop();
    }
  });

  it('answers each connection with one N% line, 1 <= N <= weight, ignoring what the client sends; SIGTERM exits 0', async () => {
    const child = spawn(process.execPath, [CLI, 'agent', '--listen', '127.0.0.1:0', '--weight', '50'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
    try {
      const lines = createInterface({ input: child.stdout });
      const [first] = (await once(lines, 'line')) as [string];
      const started = JSON.parse(first) as Record<string, unknown>;
      assert.equal(started.msg, 'drover agent running');
      assert.equal(started.weight, 50);
      const port = Number(String(started.listen).split(':').pop());
      for (let i = 0; i < 3; i++) {
        const s = await connect(port);
        if (i > 0) s.write('agent-send text the agent ignores\n');
        const line = await readLine(s);
        const m = /^(\d+)%$/.exec(line);
        assert.ok(m, `reply ${JSON.stringify(line)}`);
        assert.ok(Number(m[1]) >= 1 && Number(m[1]) <= 50, line);
        assert.equal((await readAll(s)).length, 0, 'one line, then the agent closes');
        s.destroy();
      }
      child.kill('SIGTERM');
      const [code] = await exited;
      assert.equal(code, 0, stderr);
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
  });

  it('refuses bad arguments with a usage error, and both helps describe the new flags', async () => {
    const cases: Array<[string[], RegExp]> = [
      [[], /--listen HOST:PORT is required/],
      [['--listen', 'nope'], /--listen: "nope" is not an address/],
      [['--listen', '127.0.0.1:1', '--weight', '0'], /--weight must be a whole number 1-1000/],
      [['--listen', '127.0.0.1:1', '--weight', 'x'], /--weight must be a whole number 1-1000/],
      [['--listen', '127.0.0.1:1', '--bogus'], /Unknown option '--bogus'/],
    ];
    for (const [args, message] of cases) {
      assert.throws(() => parseAgentArgs(args), (err: unknown) => err instanceof UsageError && /^agent: /.test(err.message) && message.test(err.message), args.join(' '));
    }
    assert.deepEqual(parseAgentArgs(['--listen', '0.0.0.0:5555']), { listen: { host: '0.0.0.0', port: 5555, id: '0.0.0.0:5555' }, weight: 100 });

    const run = (args: string[]) =>
      new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
        const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'], timeout: 15_000, killSignal: 'SIGKILL' });
        let stdout = '';
        let stderr = '';
        child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
        child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
        child.on('close', (code) => resolve({ code, stdout, stderr }));
      });
    const [bad, help] = await Promise.all([run(['agent', '--weight', '5']), run(['agent', '--help'])]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /^DROVER_USAGE: agent: --listen HOST:PORT is required/);
    assert.equal(help.code, 0);
    for (const text of [/drover agent --listen HOST:PORT \[--weight N\]/, /--report-load/, /--load-interval D/, /never\s+below 1%/]) assert.match(help.stdout, text);
  });
});

describe('registry load fields', () => {
  const read = (o: object) => parseMember(Buffer.from(JSON.stringify(o)), { format: 'auto' });
  const base = { host: '10.0.0.1', port: 80 };

  it('reads agentPort and load from Drover znode data', () => {
    assert.deepEqual(read({ ...base, agentPort: 9999, load: 0.75 }), { ...base, weight: 1, agentPort: 9999, load: 0.75 });
    assert.deepEqual(read({ ...base, agentPort: '9999', load: '0.5' }), { ...base, weight: 1, agentPort: 9999, load: 0.5 });
    assert.deepEqual(read({ ...base, load: 0 }), { ...base, weight: 1, load: 0 });
    assert.deepEqual(read({ ...base, load: 1 }), { ...base, weight: 1, load: 1 });
    assert.deepEqual(read({ ...base, agentPort: null, load: null }), { ...base, weight: 1 });
    // With a Nerve-looking name, the Drover-only keys still pick the Drover format.
    assert.deepEqual(read({ ...base, name: 'web-1', load: 0.25 }), { ...base, weight: 1, load: 0.25 });
  });

  it('makes a member with a bad agentPort or load unreadable', () => {
    assert.equal(read({ ...base, load: 1.5 })!.load, 1, 'an overshooting reporter counts as saturated, not unreadable');
    const cases: Array<[object, RegExp]> = [
      [{ ...base, load: -0.1 }, /load must be a number from 0 to 1/],
      [{ ...base, load: 'busy' }, /load must be a number from 0 to 1, got "busy"/],
      [{ ...base, load: true }, /load must be a number from 0 to 1/],
      [{ ...base, load: [0.5] }, /load must be a number from 0 to 1/],
      [{ ...base, agentPort: 0 }, /agentPort must be a whole number 1-65535/],
      [{ ...base, agentPort: 70000 }, /agentPort must be a whole number 1-65535/],
      [{ ...base, agentPort: 'x' }, /agentPort must be a whole number 1-65535/],
      [{ ...base, agentPort: 80.5 }, /agentPort must be a whole number 1-65535/],
    ];
    for (const [data, message] of cases) {
      assert.throws(() => read(data), (err: unknown) => err instanceof Error && /^drover member: /.test(err.message) && message.test(err.message), JSON.stringify(data));
    }
  });

  it('parses drover register --report-load and --load-interval, refusing other formats', () => {
    const base = ['--zookeeper', '127.0.0.1:2181', '--path', '/s/web', '--address', '127.0.0.1:1'];
    assert.equal((parseRegisterArgs(base) as { loadInterval?: number }).loadInterval, undefined);
    assert.equal((parseRegisterArgs([...base, '--report-load']) as { loadInterval?: number }).loadInterval, 5000);
    assert.equal((parseRegisterArgs([...base, '--report-load', '--load-interval', '250ms']) as { loadInterval?: number }).loadInterval, 250);
    const cases: Array<[string[], RegExp]> = [
      [[...base, '--format', 'curator', '--report-load'], /--report-load needs --format drover/],
      [[...base, '--format', 'plain', '--report-load'], /--report-load needs --format drover/],
      [[...base, '--load-interval', '1s'], /--load-interval needs --report-load/],
      [[...base, '--report-load', '--load-interval', '50ms'], /--load-interval must be a duration of at least 100ms/],
      [[...base, '--report-load', '--load-interval', 'soon'], /--load-interval must be a duration/],
    ];
    for (const [args, message] of cases) {
      assert.throws(() => parseRegisterArgs(args), (err: unknown) => err instanceof UsageError && message.test(err.message), args.join(' '));
    }
  });
});
