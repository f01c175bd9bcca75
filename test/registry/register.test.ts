/**
 * Registration against a real ZooKeeper: register() from code, and `drover
 * register` as a child process. Every wait is an event or a poll with a
 * deadline; everything started here is stopped in after().
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { EventEmitter, once } from 'node:events';
import { createServer, type Server } from 'node:http';
import { createServer as createNetServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import zookeeper from 'node-zookeeper-client';
import { parseMember } from '../../src/discovery/formats.js';
import { ZK, ZooKeeperConnection, zkCode } from '../../src/discovery/zk.js';
import { UsageError } from '../../src/errors.js';
import { parseRegisterArgs } from '../../src/registry/command.js';
import { register, RegisterError, type Registration } from '../../src/registry/register.js';
import { expireSession, startZooKeeper, zookeeperAvailable, type ZooKeeperServer } from '../fixtures/zookeeper.js';

const skip = zookeeperAvailable();
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const CLI = join(ROOT, 'dist', 'src', 'cli.js');
const MEMBER = /^member_[0-9a-f]{16}_\d{10}$/;
const DEADLINE_MS = 15_000;

/** Polls `probe` every 25 ms until it returns something other than undefined/false; fails after `timeoutMs`. */
async function waitFor<T>(what: string, probe: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = DEADLINE_MS): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined && value !== false) return value;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? ` (last error: ${(last as Error).message})` : ''}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Rejects when `p` has not settled within `ms`, so a hung promise fails the test instead of stalling it. */
async function within<T>(what: string, p: Promise<T>, ms = DEADLINE_MS): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: not done within ${ms} ms`)), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

/** Resolves with the first `event` on `emitter` whose argument satisfies `test`. */
function waitForEvent<T>(emitter: EventEmitter, event: string, test: (arg: T) => boolean): Promise<T> {
  return new Promise((resolve) => {
    const listener = (arg: T) => {
      if (!test(arg)) return;
      emitter.off(event, listener);
      resolve(arg);
    };
    emitter.on(event, listener);
  });
}

/** A raw node-zookeeper-client, for what our wrapper does not expose (stats, ACLs). */
async function rawClient(connect: string, auth?: string): Promise<zookeeper.Client> {
  const client = zookeeper.createClient(connect, { sessionTimeout: 10_000, spinDelay: 200 });
  if (auth) client.addAuthInfo('digest', Buffer.from(auth));
  const connected = once(client, 'connected');
  client.connect();
  await within('raw client connect', connected);
  return client;
}

function statOf(client: zookeeper.Client, path: string): Promise<zookeeper.Stat | null> {
  return new Promise((resolve, reject) => client.exists(path, (err, stat) => (err ? reject(err) : resolve(stat ?? null))));
}

/** A ZooKeeper CONNECTION_LOSS exception, as the client library reports one. */
function connectionLoss(): Error {
  return Object.assign(new Error('Exception: CONNECTION_LOSS[-4]'), { name: 'CONNECTION_LOSS', code: ZK.CONNECTION_LOSS, getCode: () => ZK.CONNECTION_LOSS });
}

/** `conn` with its create() replaced: a stand-in for network trouble around one create. */
function withCreate(conn: ZooKeeperConnection, create: ZooKeeperConnection['create']): ZooKeeperConnection {
  return new Proxy(conn, {
    get(target, key) {
      if (key === 'create') return create;
      const value = Reflect.get(target, key, target) as unknown;
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
}

describe('register()', { skip, timeout: 60_000 }, () => {
  let zk: ZooKeeperServer;
  /** An independent session that looks at what registrations wrote. */
  let observer: ZooKeeperConnection;
  let raw: zookeeper.Client;
  const cleanups: Array<() => unknown> = [];
  let n = 0;
  /** A fresh service path per test. */
  const servicePath = (name: string) => `/reg${++n}/services/${name}`;

  const children = async (path: string): Promise<string[]> => {
    try {
      return (await observer.getChildren(path)).sort();
    } catch (err) {
      if (zkCode(err) === ZK.NO_NODE) return [];
      throw err;
    }
  };
  const json = async (path: string): Promise<Record<string, unknown>> => JSON.parse((await observer.getData(path)).data!.toString('utf8')) as Record<string, unknown>;
  /** register() that is closed after the test even when it fails. */
  const track = (r: Registration): Registration => {
    cleanups.push(() => r.close());
    return r;
  };

  before(async () => {
    zk = await startZooKeeper();
    observer = new ZooKeeperConnection({ connect: zk.connect, sessionTimeout: 10_000, auth: [] });
    raw = await rawClient(zk.connect);
  });
  after(async () => {
    for (const c of cleanups.reverse()) await c();
    observer?.close();
    raw?.close();
    await zk?.destroy();
  });

  it('drover format: creates the parent and one EPHEMERAL_SEQUENTIAL member holding the data', async () => {
    const path = servicePath('web');
    const reg = track(await register({ zookeeper: { connect: zk.connect }, path, address: '127.0.0.1:9001', weight: 3, zone: 'eu-1', meta: { version: '1.2' } }));
    const names = await children(path);
    assert.equal(names.length, 1);
    assert.match(names[0]!, MEMBER);
    assert.equal(reg.path, `${path}/${names[0]}`);
    assert.deepEqual(await json(reg.path!), { host: '127.0.0.1', port: 9001, weight: 3, zone: 'eu-1', meta: { version: '1.2' } });
    // Discovery reads it back as the same member.
    assert.deepEqual(parseMember((await observer.getData(reg.path!)).data, { format: 'auto' }), {
      host: '127.0.0.1',
      port: 9001,
      weight: 3,
      zone: 'eu-1',
      meta: { version: '1.2' },
    });
    const stat = await statOf(raw, reg.path!);
    assert.ok(stat!.ephemeralOwner.equals(reg.connection.session().id), 'owned by the registration session');
    assert.ok(!stat!.ephemeralOwner.equals(Buffer.alloc(8)), 'ephemeral');
    const parent = await statOf(raw, path);
    assert.ok(parent!.ephemeralOwner.equals(Buffer.alloc(8)), 'the parent is persistent');
  });

  it('curator format: an Apache Curator ServiceInstance named after the last path segment, or by name', async () => {
    const path = servicePath('api');
    const t0 = Date.now();
    const reg = track(await register({ zookeeper: { connect: zk.connect }, path, address: '127.0.0.1:9002', format: 'curator' }));
    const data = await json(reg.path!);
    assert.deepEqual(Object.keys(data).sort(), ['address', 'id', 'name', 'payload', 'port', 'registrationTimeUTC', 'serviceType', 'sslPort', 'uriSpec']);
    assert.equal(data.name, 'api');
    assert.match(String(data.id), /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    assert.equal(data.address, '127.0.0.1');
    assert.equal(data.port, 9002);
    assert.equal(data.sslPort, null);
    assert.equal(data.payload, null);
    assert.equal(data.serviceType, 'DYNAMIC');
    assert.equal(data.uriSpec, null);
    assert.ok(typeof data.registrationTimeUTC === 'number' && data.registrationTimeUTC >= t0 && data.registrationTimeUTC <= Date.now());
    assert.deepEqual(parseMember((await observer.getData(reg.path!)).data, { format: 'auto' }), {
      host: '127.0.0.1',
      port: 9002,
      weight: 1,
      meta: { id: data.id, name: 'api' },
    });
    // Curator has no weight; extra fields are fine (Curator ignores unknown keys, honours enabled).
    await assert.rejects(reg.setWeight(2), (err: RegisterError) => err.code === 'DROVER_REGISTER_FAILED' && /curator format cannot carry a weight/.test(err.message));
    await reg.setData({ enabled: false });
    assert.equal((await json(reg.path!)).enabled, false);
    assert.equal(parseMember((await observer.getData(reg.path!)).data, { format: 'auto' }), null);

    const named = track(await register({ zookeeper: { connect: zk.connect }, path, address: '127.0.0.1:9003', format: 'curator', name: 'orders' }));
    assert.equal((await json(named.path!)).name, 'orders');
    assert.notEqual((await json(named.path!)).id, data.id);
  });

  it('plain format: the text host:port; setWeight and setData refuse', async () => {
    const path = servicePath('plain');
    const reg = track(await register({ zookeeper: { connect: zk.connect }, path, address: '[::1]:9004', format: 'plain' }));
    assert.equal((await observer.getData(reg.path!)).data!.toString('utf8'), '[::1]:9004');
    const plainError = (err: RegisterError) => err instanceof RegisterError && err.code === 'DROVER_REGISTER_FAILED' && /plain format cannot carry/.test(err.message);
    await assert.rejects(reg.setWeight(2), plainError);
    await assert.rejects(reg.setData({ drain: true }), plainError);
    assert.equal((await observer.getData(reg.path!)).data!.toString('utf8'), '[::1]:9004');
  });

  it('setWeight and setData update the same node; undefined removes a field; identity keys and bad weights are refused', async () => {
    const path = servicePath('data');
    const reg = track(await register({ zookeeper: { connect: zk.connect }, path, address: '127.0.0.1:9005' }));
    const node = reg.path!;
    assert.equal((await json(node)).weight, 1);
    await reg.setWeight(5);
    assert.deepEqual(await json(node), { host: '127.0.0.1', port: 9005, weight: 5 });
    await reg.setData({ drain: true, load: 0.5 });
    assert.deepEqual(await json(node), { host: '127.0.0.1', port: 9005, weight: 5, drain: true, load: 0.5 });
    assert.equal(parseMember((await observer.getData(node)).data, { format: 'drover' })?.drain, true);
    await reg.setData({ drain: undefined, weight: 0 });
    assert.deepEqual(await json(node), { host: '127.0.0.1', port: 9005, weight: 0, load: 0.5 });
    for (const bad of [1001, -1, 1.5, NaN]) {
      await assert.rejects(reg.setWeight(bad), { code: 'DROVER_REGISTER_FAILED' });
    }
    await assert.rejects(reg.setData({ port: 1 }), /"port" identifies the instance/);
    await assert.rejects(reg.setData({ weight: 'heavy' }), { code: 'DROVER_REGISTER_FAILED' });
    assert.equal(reg.path, node);
    assert.deepEqual(await children(path), [node.slice(path.length + 1)]);
  });

  it('pause() removes the node and stays connected; resume() creates it again with the latest data', async () => {
    const path = servicePath('pause');
    const reg = track(await register({ zookeeper: { connect: zk.connect }, path, address: '127.0.0.1:9006' }));
    const first = reg.path!;
    await reg.pause();
    assert.equal(reg.path, undefined);
    assert.deepEqual(await children(path), []);
    assert.equal(reg.connection.connected, true);
    await reg.pause(); // idempotent
    await reg.setWeight(2); // kept for the next node
    assert.deepEqual(await children(path), []);
    await reg.resume();
    const names = await children(path);
    assert.equal(names.length, 1);
    assert.equal(reg.path, `${path}/${names[0]}`);
    assert.notEqual(reg.path, first);
    assert.equal((await json(reg.path!)).weight, 2);
  });

  it('register({ paused: true }) creates the parent but no node until resume()', async () => {
    const path = servicePath('paused');
    const reg = track(await register({ zookeeper: { connect: zk.connect }, path, address: '127.0.0.1:9007', paused: true }));
    assert.equal(reg.path, undefined);
    assert.ok(await statOf(raw, path), 'parent exists');
    assert.deepEqual(await children(path), []);
    await reg.resume();
    assert.equal((await children(path)).length, 1);
  });

  it('close() removes the node, closes only a connection it opened, and is idempotent', async () => {
    const path = servicePath('close');
    const own = await register({ zookeeper: { connect: zk.connect }, path, address: '127.0.0.1:9008' });
    const shared = new ZooKeeperConnection({ connect: zk.connect, sessionTimeout: 10_000, auth: [] });
    cleanups.push(() => shared.close());
    const onShared = await register({ zookeeper: shared, path, address: '127.0.0.1:9009' });
    assert.equal((await children(path)).length, 2);

    await Promise.all([own.close(), own.close()]);
    await own.close();
    assert.equal(own.path, undefined);
    assert.equal(own.connection.connected, false);
    assert.deepEqual(await children(path), [onShared.path!.slice(path.length + 1)]);
    await assert.rejects(own.setWeight(2), /closed/);
    await assert.rejects(own.resume(), /closed/);

    await onShared.close();
    assert.deepEqual(await children(path), []);
    assert.equal(shared.connected, true, 'a shared connection stays open');
    // The shared session still works for others.
    const again = track(await register({ zookeeper: shared, path, address: '127.0.0.1:9009' }));
    assert.equal((await children(path)).length, 1);
    await again.close();
  });

  it('after a session expiry the node comes back under the new session; a paused one stays away', async () => {
    const path = servicePath('expiry');
    const conn = new ZooKeeperConnection({ connect: zk.connect, sessionTimeout: 4000, auth: [] });
    cleanups.push(() => conn.close());
    const reg = track(await register({ zookeeper: conn, path, address: '127.0.0.1:9010', weight: 4 }));
    const paused = track(await register({ zookeeper: conn, path, address: '127.0.0.1:9011', paused: true }));
    await reg.setData({ load: 0.25 });
    const before = reg.path!;
    const old = conn.session();
    const lost = once(reg, 'deregistered');
    const back = once(reg, 'registered');
    await expireSession(zk.connect, old.id, old.password);
    assert.deepEqual(await within('deregistered event', lost), [before]);
    const [after] = (await within('registered event', back)) as [string];
    assert.notEqual(after, before);
    assert.equal(reg.path, after);
    assert.equal(conn.expirations, 1);
    const session = conn.session();
    assert.ok(!session.id.equals(old.id), 'a new session');
    const stat = await statOf(raw, after);
    assert.ok(stat!.ephemeralOwner.equals(session.id), 'owned by the new session');
    assert.deepEqual(await json(after), { host: '127.0.0.1', port: 9010, weight: 4, load: 0.25 });
    assert.deepEqual(await children(path), [after.slice(path.length + 1)], 'exactly one node: the old one went with its session');
    assert.equal(paused.path, undefined);
    await paused.resume();
    assert.equal((await children(path)).length, 2);
  });

  it('a create that fails with connection loss but happened on the server is adopted, not duplicated', async () => {
    const path = servicePath('protected');
    const conn = new ZooKeeperConnection({ connect: zk.connect, sessionTimeout: 10_000, auth: [] });
    cleanups.push(() => conn.close());
    let calls = 0;
    let made: string | undefined;
    const flaky = withCreate(conn, async (p, data, mode) => {
      calls++;
      if (calls > 1) return conn.create(p, data, mode);
      made = await conn.create(p, data, mode); // the server did it...
      throw connectionLoss(); // ...but the reply was lost
    });
    const reg = track(await register({ zookeeper: flaky, path, address: '127.0.0.1:9012' }));
    assert.equal(calls, 1, 'listed and adopted instead of creating again');
    assert.equal(reg.path, made);
    assert.deepEqual(await children(path), [made!.slice(path.length + 1)]);
    // Adopted nodes get the current data written.
    await reg.setWeight(6);
    assert.equal((await json(made!)).weight, 6);
  });

  it('a create lost before the server saw it is simply made again', async () => {
    const path = servicePath('lost');
    const conn = new ZooKeeperConnection({ connect: zk.connect, sessionTimeout: 10_000, auth: [] });
    cleanups.push(() => conn.close());
    let calls = 0;
    const flaky = withCreate(conn, async (p, data, mode) => {
      if (++calls === 1) throw connectionLoss();
      return conn.create(p, data, mode);
    });
    const reg = track(await register({ zookeeper: flaky, path, address: '127.0.0.1:9013' }));
    assert.equal(calls, 2);
    assert.deepEqual(await children(path), [reg.path!.slice(path.length + 1)]);
  });

  it('a create the client library re-sent (two nodes, one reply) leaves one node', async () => {
    const path = servicePath('resent');
    const conn = new ZooKeeperConnection({ connect: zk.connect, sessionTimeout: 10_000, auth: [] });
    cleanups.push(() => conn.close());
    const flaky = withCreate(conn, async (p, data, mode) => {
      await conn.create(p, data, mode); // the first attempt's reply was lost
      return conn.create(p, data, mode); // the library's retry
    });
    const reg = track(await register({ zookeeper: flaky, path, address: '127.0.0.1:9014' }));
    const names = await waitFor('the duplicate to be removed', async () => {
      const c = await children(path);
      return c.length === 1 ? c : undefined;
    });
    assert.equal(reg.path, `${path}/${names[0]}`);
  });

  it('an update made while ZooKeeper is down lands when it is back; the node survives', async () => {
    const path = servicePath('outage');
    const reg = track(await register({ zookeeper: { connect: zk.connect }, path, address: '127.0.0.1:9015' }));
    const node = reg.path!;
    await zk.stop();
    const update = reg.setWeight(7);
    await zk.restart();
    await within('setWeight after the restart', update);
    assert.equal(reg.path, node, 'same session, same node');
    assert.equal((await json(node)).weight, 7);
  });

  it('refuses what retrying cannot fix with DROVER_REGISTER_FAILED: bad address, path or options, NO_AUTH', async () => {
    const failed = (pattern: RegExp) => (err: unknown) => err instanceof RegisterError && err.code === 'DROVER_REGISTER_FAILED' && pattern.test(err.message);
    const z = { connect: zk.connect };
    await assert.rejects(register({ zookeeper: z, path: '/s/x', address: 'nope' }), failed(/bad address/));
    await assert.rejects(register({ zookeeper: z, path: '/s/x', address: '127.0.0.1:0' }), failed(/bad address.*out of range/));
    await assert.rejects(register({ zookeeper: z, path: 's/x', address: '127.0.0.1:1' }), failed(/bad path/));
    await assert.rejects(register({ zookeeper: z, path: '/', address: '127.0.0.1:1' }), failed(/bad path/));
    await assert.rejects(register({ zookeeper: z, path: '/s/x', address: '127.0.0.1:1', format: 'plain', weight: 2 }), failed(/weight is not part of the plain format/));
    await assert.rejects(register({ zookeeper: z, path: '/s/x', address: '127.0.0.1:1', weight: 1001 }), failed(/weight must be/));
    await assert.rejects(register({ zookeeper: z, path: '/s/x', address: '127.0.0.1:1', format: 'xml' as 'plain' }), failed(/unknown format/));

    // A parent only an authenticated user may write to.
    const admin = await rawClient(zk.connect, 'admin:secret');
    cleanups.push(() => admin.close());
    const locked = `/locked${++n}`;
    await new Promise<void>((resolve, reject) =>
      admin.create(locked, Buffer.alloc(0), [new zookeeper.ACL(zookeeper.Permission.ALL, new zookeeper.Id('auth', ''))], zookeeper.CreateMode.PERSISTENT, (err) =>
        err ? reject(err) : resolve(),
      ),
    );
    await new Promise<void>((resolve, reject) =>
      admin.create(`${locked}/web`, Buffer.alloc(0), [new zookeeper.ACL(zookeeper.Permission.ALL, new zookeeper.Id('auth', ''))], zookeeper.CreateMode.PERSISTENT, (err) =>
        err ? reject(err) : resolve(),
      ),
    );
    await assert.rejects(register({ zookeeper: z, path: `${locked}/web`, address: '127.0.0.1:9016' }), failed(/NO_AUTH/));
    await assert.rejects(register({ zookeeper: z, path: `${locked}/new`, address: '127.0.0.1:9016' }), failed(/NO_AUTH/));
    const authed = track(
      await register({ zookeeper: { ...z, auth: [{ scheme: 'digest', credentials: 'admin:secret' }] }, path: `${locked}/web`, address: '127.0.0.1:9016' }),
    );
    assert.match(authed.path!, new RegExp(`^${locked}/web/member_`));
    // Re-created under a new session without a NO_AUTH on the way: the client
    // must send its credentials before the create.
    const errors: unknown[] = [];
    authed.on('error', (err) => errors.push(err));
    const back = once(authed, 'registered');
    const { id, password } = authed.connection.session();
    await expireSession(zk.connect, id, password);
    await within('re-created under the locked parent', back);
    assert.deepEqual(errors, []);
    const members = await new Promise<string[]>((resolve, reject) => admin.getChildren(`${locked}/web`, (err, c) => (err ? reject(err) : resolve(c))));
    assert.deepEqual(members, [authed.path!.slice(`${locked}/web/`.length)]);
  });

  it('register() waits for a ZooKeeper that does not answer, and its signal aborts the wait', async () => {
    // A "server" that hangs up on every connection: the client keeps retrying.
    const attempts = new EventEmitter();
    let count = 0;
    const dead = createNetServer((socket) => {
      socket.destroy();
      attempts.emit('attempt', ++count);
    });
    dead.listen(0, '127.0.0.1');
    await once(dead, 'listening');
    cleanups.push(() => new Promise((r) => dead.close(r)));
    const controller = new AbortController();
    const pending = register({
      zookeeper: { connect: `127.0.0.1:${(dead.address() as AddressInfo).port}`, sessionTimeout: 2000 },
      path: '/s/x',
      address: '127.0.0.1:1',
      signal: controller.signal,
    });
    let settled = false;
    void pending.then(
      () => (settled = true),
      () => (settled = true),
    );
    await within('three connection attempts', waitForEvent(attempts, 'attempt', (c: number) => c >= 3));
    assert.equal(settled, false);
    controller.abort(new Error('gave up'));
    await assert.rejects(within('abort', pending), /gave up/);
  });
});

describe('drover register (command line)', { skip, timeout: 60_000 }, () => {
  let zk: ZooKeeperServer;
  let observer: ZooKeeperConnection;
  let health: Server;
  let healthStatus = 200;
  let healthUrl: string;
  const running = new Set<ChildProcess>();
  let n = 0;

  const children = async (path: string): Promise<string[]> => {
    try {
      return await observer.getChildren(path);
    } catch (err) {
      if (zkCode(err) === ZK.NO_NODE) return [];
      throw err;
    }
  };

  interface Cli {
    child: ChildProcess;
    /** Parsed JSON log lines so far. */
    lines: Array<Record<string, unknown>>;
    stderr: () => string;
    exited: Promise<[number | null, NodeJS.Signals | null]>;
  }

  function drover(args: string[]): Cli {
    const child = spawn(process.execPath, [CLI, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    running.add(child);
    const lines: Array<Record<string, unknown>> = [];
    let buffered = '';
    let stderr = '';
    child.stdout!.setEncoding('utf8').on('data', (d: string) => {
      buffered += d;
      let i;
      while ((i = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, i);
        buffered = buffered.slice(i + 1);
        try {
          lines.push(JSON.parse(line) as Record<string, unknown>);
        } catch {
          lines.push({ text: line });
        }
      }
    });
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
    void exited.then(() => running.delete(child));
    return { child, lines, stderr: () => stderr, exited };
  }

  const logged = (cli: Cli, msg: string | RegExp) =>
    waitFor(`log line ${String(msg)}`, () => cli.lines.find((l) => (typeof msg === 'string' ? l.msg === msg : msg.test(String(l.msg)))));

  before(async () => {
    zk = await startZooKeeper();
    observer = new ZooKeeperConnection({ connect: zk.connect, sessionTimeout: 10_000, auth: [] });
    health = createServer((req, res) => {
      res.statusCode = healthStatus;
      res.end(healthStatus < 400 ? 'ok' : 'failing');
    });
    health.listen(0, '127.0.0.1');
    await once(health, 'listening');
    healthUrl = `http://127.0.0.1:${(health.address() as AddressInfo).port}/healthz`;
  });
  after(async () => {
    for (const child of running) child.kill('SIGKILL');
    await Promise.all([...running].map((c) => once(c, 'exit')));
    observer?.close();
    health?.closeAllConnections();
    await new Promise((r) => (health ? health.close(r) : r(undefined)));
    await zk?.destroy();
  });

  it('registers, deregisters while --check fails, re-registers when it passes, removes the node on SIGTERM and exits 0', async () => {
    healthStatus = 200;
    const path = `/cli${++n}/web`;
    const cli = drover(['register', '--zookeeper', zk.connect, '--path', path, '--address', '127.0.0.1:9101', '--weight', '3', '--check', healthUrl, '--interval', '200ms']);
    const first = await waitFor('the node', async () => (await children(path))[0]);
    assert.match(first, MEMBER);
    const data = JSON.parse((await observer.getData(`${path}/${first}`)).data!.toString('utf8')) as Record<string, unknown>;
    assert.deepEqual(data, { host: '127.0.0.1', port: 9101, weight: 3 });

    healthStatus = 500;
    await waitFor('the node to go', async () => (await children(path)).length === 0);
    const failed = await logged(cli, 'check failed: deregistering');
    assert.equal(failed.status, 500);
    assert.equal(failed.level, 'warn');

    healthStatus = 200;
    const second = await waitFor('the node to come back', async () => (await children(path))[0]);
    assert.notEqual(second, first);
    await logged(cli, 'check passed: registering again');

    cli.child.kill('SIGTERM');
    const [code, signal] = await within('exit after SIGTERM', cli.exited);
    assert.equal(signal, null);
    assert.equal(code, 0, cli.stderr());
    assert.deepEqual(await children(path), []);
    assert.ok(cli.lines.some((l) => l.msg === 'deregistered' && l.path === `${path}/${second}`), 'removed its node before exiting');
    assert.equal(cli.stderr(), '');
  });

  it('does not register while the first check fails; SIGINT also deregisters (curator format, no weight)', async () => {
    healthStatus = 503;
    const path = `/cli${++n}/api`;
    const cli = drover(['register', '--zookeeper', zk.connect, '--path', path, '--address', 'localhost:9102', '--format', 'curator', '--check', healthUrl, '--interval', '200ms']);
    await logged(cli, 'check failed: not registering until it passes');
    await logged(cli, 'drover register running');
    assert.deepEqual(await children(path), []);
    healthStatus = 200;
    const name = await waitFor('the node', async () => (await children(path))[0]);
    const data = JSON.parse((await observer.getData(`${path}/${name}`)).data!.toString('utf8')) as Record<string, unknown>;
    assert.equal(data.name, 'api');
    assert.equal(data.address, 'localhost');
    cli.child.kill('SIGINT');
    const [code] = await within('exit after SIGINT', cli.exited);
    assert.equal(code, 0, cli.stderr());
    assert.deepEqual(await children(path), []);
  });

  it('without --check: registers at once and deregisters on SIGTERM', async () => {
    const path = `/cli${++n}/plain`;
    const cli = drover(['register', '--zookeeper', zk.connect, '--path', path, '--address', '127.0.0.1:9103', '--format', 'plain']);
    const name = await waitFor('the node', async () => (await children(path))[0]);
    assert.equal((await observer.getData(`${path}/${name}`)).data!.toString('utf8'), '127.0.0.1:9103');
    cli.child.kill('SIGTERM');
    const [code] = await within('exit after SIGTERM', cli.exited);
    assert.equal(code, 0, cli.stderr());
    assert.deepEqual(await children(path), []);
  });

  it('rejects bad arguments with DROVER_USAGE before connecting; the command exits 2', async () => {
    const base = ['--zookeeper', zk.connect, '--path', '/s/web', '--address', '127.0.0.1:1'];
    const cases: Array<[string[], RegExp]> = [
      [['--path', '/s/web', '--address', '127.0.0.1:1'], /--zookeeper is required/],
      [['--zookeeper', zk.connect, '--address', '127.0.0.1:1'], /--path is required/],
      [['--zookeeper', zk.connect, '--path', '/s/web'], /--address is required/],
      [['--zookeeper', zk.connect, '--path', '/s/web', '--address', 'nope'], /--address: "nope" is not an address/],
      [['--zookeeper', zk.connect, '--path', 's/web', '--address', '127.0.0.1:1'], /--path s\/web: must start with \//],
      [[...base, '--weight', 'x'], /--weight must be a whole number/],
      [[...base, '--weight', '1001'], /--weight must be a whole number/],
      [[...base, '--format', 'plain', '--weight', '2'], /--weight needs --format drover/],
      [[...base, '--format', 'xml'], /--format must be one of drover, curator, plain/],
      [[...base, '--check', 'ftp://x/'], /--check must be an http/],
      [[...base, '--check', healthUrl, '--interval', '5'], /--interval must be a duration/],
      [[...base, '--check', healthUrl, '--interval', '50ms'], /--interval must be a duration of at least 100ms/],
      [[...base, '--interval', '1s'], /--interval needs --check/],
      [[...base, '--bogus'], /Unknown option '--bogus'/],
      [[...base, 'extra'], /Unexpected argument 'extra'/],
    ];
    for (const [args, message] of cases) {
      assert.throws(() => parseRegisterArgs(args), (err: unknown) => err instanceof UsageError && /^register: /.test(err.message) && message.test(err.message), args.join(' '));
    }
    assert.deepEqual(parseRegisterArgs([...base, '--weight', '3', '--check', healthUrl, '--interval', '1.5s']), {
      zookeeper: zk.connect,
      path: '/s/web',
      address: '127.0.0.1:1',
      weight: 3,
      format: 'drover',
      check: new URL(healthUrl),
      interval: 1500,
    });
    // As a command: the message on stderr, exit code 2, nothing registered.
    const cli = drover(['register', ...base, '--address', 'nope']);
    const [code] = await within('drover register with a bad address', cli.exited);
    assert.equal(code, 2);
    assert.match(cli.stderr(), /^DROVER_USAGE: register: --address: "nope" is not an address/);
    assert.deepEqual(await children('/s/web'), []);
  });

  it('--help describes the register command', async () => {
    for (const args of [['--help'], ['register', '--help']]) {
      const cli = drover(args);
      const [code] = await within('help', cli.exited);
      assert.equal(code, 0);
      const text = cli.lines.map((l) => l.text ?? '').join('\n');
      assert.match(text, /^Usage: drover/);
      assert.match(text, /drover register --zookeeper CONNECT --path ZNODE --address HOST:PORT/);
      assert.match(text, /--check URL/);
    }
  });
});
