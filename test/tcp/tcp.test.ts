import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { after, before, describe, it } from 'node:test';
import {
  closed,
  connect,
  freePort,
  readAll,
  readLine,
  startBackend,
  startProxy,
  tcpHandles,
  type TestBackend,
} from '../fixtures/harness.js';

/** Writes `total` bytes of random data in 1 MB chunks, honouring backpressure, then ends. Returns the sha256. */
async function sendRandom(s: import('node:net').Socket, total: number): Promise<string> {
  const hash = createHash('sha256');
  for (let sent = 0; sent < total; ) {
    const chunk = randomBytes(Math.min(1 << 20, total - sent));
    hash.update(chunk);
    sent += chunk.length;
    if (!s.write(chunk)) await once(s, 'drain');
  }
  s.end();
  return hash.digest('hex');
}

describe('TCP proxy end to end', () => {
  let echoA: TestBackend;
  let echoB: TestBackend;
  before(async () => {
    [echoA, echoB] = await Promise.all([startBackend('echo'), startBackend('echo')]);
  });
  after(async () => {
    await Promise.all([echoA.stop(), echoB.stop()]);
  });

  it('carries 100 MB each way byte for byte', async () => {
    const quiet = await startBackend('quiet-echo');
    const proxy = await startProxy(`
services: { s: { static: [127.0.0.1:${quiet.port}] } }
listeners: [ { bind: 127.0.0.1:0, service: s } ]`);
    try {
      const client = await connect(proxy.port(), { allowHalfOpen: true });
      const received = createHash('sha256');
      let length = 0;
      client.on('data', (c: Buffer) => {
        received.update(c);
        length += c.length;
      });
      const ended = once(client, 'end');
      const sentHash = await sendRandom(client, 100 * 1024 * 1024);
      await ended;
      assert.equal(length, 100 * 1024 * 1024);
      assert.equal(received.digest('hex'), sentHash);
      client.destroy();
    } finally {
      await proxy.stop();
      await quiet.stop();
    }
  });

  it('serves 1,000 concurrent connections, spread over the backends', async () => {
    const proxy = await startProxy(`
services: { s: { static: [127.0.0.1:${echoA.port}, 127.0.0.1:${echoB.port}] } }
listeners: [ { bind: 127.0.0.1:0, service: s } ]`);
    try {
      const clients = await Promise.all(Array.from({ length: 1000 }, () => connect(proxy.port(), { allowHalfOpen: true })));
      const replies = await Promise.all(
        clients.map(async (c, i) => {
          const all = readAll(c);
          c.end(`ping ${i}\n`);
          return (await all).toString();
        }),
      );
      const perBackend = new Map<string, number>();
      replies.forEach((r, i) => {
        const [greeting, echo] = r.split('\n');
        assert.equal(echo, `ping ${i}`);
        perBackend.set(greeting!, (perBackend.get(greeting!) ?? 0) + 1);
      });
      assert.deepEqual([...perBackend.values()], [500, 500]);
      await Promise.all(clients.map((c) => (c.destroy(), closed(c))));
    } finally {
      await proxy.stop();
    }
  });

  it('skips a refused backend without a client error', async () => {
    const dead = await freePort();
    const proxy = await startProxy(`
services: { s: { static: [127.0.0.1:${dead}, 127.0.0.1:${echoA.port}], retries: 1 } }
listeners: [ { bind: 127.0.0.1:0, service: s } ]`);
    try {
      for (let i = 0; i < 10; i++) {
        const c = await connect(proxy.port());
        assert.equal(await readLine(c), `hello ${echoA.port}`);
        c.destroy();
        await closed(c);
      }
    } finally {
      await proxy.stop();
    }
  });

  it('closes the client when every candidate refuses', async () => {
    const proxy = await startProxy(`
services: { s: { static: [127.0.0.1:${await freePort()}, 127.0.0.1:${await freePort()}] } }
listeners: [ { bind: 127.0.0.1:0, service: s } ]`);
    try {
      const c = await connect(proxy.port());
      assert.equal((await readAll(c)).length, 0);
      await closed(c);
    } finally {
      await proxy.stop();
    }
  });

  it('closes the client and leaks no sockets when the backend dies mid-stream', async () => {
    const flood = await startBackend('flood');
    const proxy = await startProxy(`
services: { s: { static: [127.0.0.1:${flood.port}] } }
listeners: [ { bind: 127.0.0.1:0, service: s } ]`);
    try {
      const baseline = tcpHandles();
      const c = await connect(proxy.port());
      let bytes = 0;
      c.on('error', () => {});
      await new Promise<void>((resolve) =>
        c.on('data', (chunk: Buffer) => {
          bytes += chunk.length;
          if (bytes > 1 << 20) resolve();
        }),
      );
      const done = closed(c);
      await flood.stop('SIGKILL');
      await done;
      // The proxy's two sockets close on their own; wait for its count, not for time.
      const listener = proxy.drover.listeners[0]!;
      while (listener.connections > 0) await new Promise((r) => setImmediate(r));
      await waitFor(() => tcpHandles() === baseline);
      assert.equal(tcpHandles(), baseline);
      assert.equal(proxy.drover.services.get('s')!.states.active(`127.0.0.1:${flood.port}`), 0);
    } finally {
      await proxy.stop();
    }
  });

  it('keeps half-close: a client that ends its side still gets the whole response', async () => {
    const quiet = await startBackend('quiet-echo');
    const proxy = await startProxy(`
services: { s: { static: [127.0.0.1:${quiet.port}] } }
listeners: [ { bind: 127.0.0.1:0, service: s } ]`);
    try {
      const c = await connect(proxy.port(), { allowHalfOpen: true });
      const payload = randomBytes(8 * 1024 * 1024);
      const all = readAll(c);
      c.end(payload);
      await once(c, 'finish');
      const got = await all;
      assert.ok(got.equals(payload), `got ${got.length} of ${payload.length} bytes`);
      c.destroy();
    } finally {
      await proxy.stop();
      await quiet.stop();
    }
  });

  for (const version of ['v1', 'v2'] as const) {
    it(`sends a PROXY ${version} header with the real client address`, async () => {
      const backend = await startBackend('proxy');
      const proxy = await startProxy(`
services: { s: { static: [127.0.0.1:${backend.port}] } }
listeners: [ { bind: 127.0.0.1:0, service: s, proxyProtocol: ${version} } ]`);
      try {
        const c = await connect(proxy.port());
        c.write('after the header\n');
        const header = JSON.parse(await readLine(c));
        assert.deepEqual(header, {
          version: version === 'v1' ? 1 : 2,
          command: 'PROXY',
          family: 'TCP4',
          source: '127.0.0.1',
          destination: '127.0.0.1',
          sourcePort: c.localPort,
          destinationPort: proxy.port(),
        });
        assert.equal(await readLine(c), 'after the header');
        c.destroy();
      } finally {
        await proxy.stop();
        await backend.stop();
      }
    });
  }

  it('slows the backend when the client does not read (no unbounded buffering)', async () => {
    const flood = await startBackend('flood');
    const proxy = await startProxy(`
services: { s: { static: [127.0.0.1:${flood.port}] } }
listeners: [ { bind: 127.0.0.1:0, service: s } ]`);
    try {
      const c = await connect(proxy.port());
      c.pause();
      const { written } = (await flood.next('stalled')) as { written: number };
      // Kernel buffers on both hops hold some MB; an unbounded proxy would absorb everything.
      assert.ok(written < 64 * 1024 * 1024, `backend wrote ${written} bytes into a client that reads nothing`);
      c.destroy();
    } finally {
      await proxy.stop();
      await flood.stop();
    }
  });

  it('refuses clients beyond maxConnections and keeps serving the others', async () => {
    const proxy = await startProxy(`
services: { s: { static: [127.0.0.1:${echoA.port}] } }
listeners: [ { bind: 127.0.0.1:0, service: s, maxConnections: 2 } ]`);
    try {
      const a = await connect(proxy.port());
      const b = await connect(proxy.port());
      assert.equal(await readLine(a), `hello ${echoA.port}`);
      assert.equal(await readLine(b), `hello ${echoA.port}`);
      const extra = await connect(proxy.port());
      extra.on('error', () => {});
      const got = await readAll(extra).catch(() => Buffer.alloc(0));
      assert.equal(got.length, 0);
      a.resume();
      a.write('still here\n');
      assert.equal(await readLine(a), 'still here');
      a.destroy();
      b.destroy();
    } finally {
      await proxy.stop();
    }
  });

  it('closes both sides after the idle timeout', async () => {
    const proxy = await startProxy(`
services: { s: { static: [127.0.0.1:${echoA.port}], timeouts: { idle: 200ms } } }
listeners: [ { bind: 127.0.0.1:0, service: s } ]`);
    try {
      const c = await connect(proxy.port());
      const started = Date.now();
      assert.equal(await readLine(c), `hello ${echoA.port}`);
      c.resume();
      await closed(c);
      assert.ok(Date.now() - started >= 150, 'closed before the idle timeout');
    } finally {
      await proxy.stop();
    }
  });

  it('closes both sides at the drain timeout, releasing the backend connection', async () => {
    const proxy = await startProxy(`
services: { s: { static: [127.0.0.1:${echoA.port}] } }
listeners: [ { bind: 127.0.0.1:0, service: s } ]`);
    const baseline = tcpHandles();
    const c = await connect(proxy.port());
    assert.equal(await readLine(c), `hello ${echoA.port}`);
    c.resume();
    await proxy.stop(100);
    await closed(c);
    const states = proxy.drover.services.get('s')!.states;
    await waitFor(() => states.active(`127.0.0.1:${echoA.port}`) === 0);
    assert.equal(states.active(`127.0.0.1:${echoA.port}`), 0);
    await waitFor(() => tcpHandles() <= baseline - 1);
    assert.ok(tcpHandles() <= baseline - 1, 'the listener and both proxy sockets are gone');
  });

  it('treats a failed connect as slow for response-time, so the dead backend stops being picked first', async () => {
    const dead = await freePort();
    const proxy = await startProxy(`
services: { s: { static: [127.0.0.1:${dead}, 127.0.0.1:${echoA.port}], strategy: response-time, retries: 1 } }
listeners: [ { bind: 127.0.0.1:0, service: s } ]`);
    try {
      for (let i = 0; i < 20; i++) {
        const c = await connect(proxy.port());
        assert.equal(await readLine(c), `hello ${echoA.port}`);
        c.destroy();
      }
      const states = proxy.drover.services.get('s')!.states;
      // The refused connect was sampled as the connect timeout (5 s), far above any real connect.
      assert.ok(states.latency(`127.0.0.1:${dead}`)! > 1000, `dead backend latency ${states.latency(`127.0.0.1:${dead}`)}`);
      assert.ok(states.latency(`127.0.0.1:${dead}`)! > states.latency(`127.0.0.1:${echoA.port}`)!);
      assert.equal(proxy.drover.services.get('s')!.candidates('127.0.0.1')[0]!.port, echoA.port);
    } finally {
      await proxy.stop();
    }
  });

  it('survives a custom strategy that throws: the client is closed, the proxy keeps running', async () => {
    const proxy = await startProxy(`
services: { s: { static: [127.0.0.1:${echoA.port}], strategy: { module: ./dist/test/fixtures/throwing-strategy.js } } }
listeners: [ { bind: 127.0.0.1:0, service: s } ]`);
    try {
      const first = await connect(proxy.port());
      assert.equal(await readLine(first), `hello ${echoA.port}`);
      first.destroy();
      const second = await connect(proxy.port());
      assert.equal((await readAll(second)).length, 0);
      assert.equal(proxy.drover.listeners[0]!.address.endsWith(String(proxy.port())), true);
    } finally {
      await proxy.stop();
    }
  });

  it('lets open connections finish on stop, and refuses new ones', async () => {
    const proxy = await startProxy(`
services: { s: { static: [127.0.0.1:${echoA.port}] } }
listeners: [ { bind: 127.0.0.1:0, service: s } ]`);
    const port = proxy.port();
    const c = await connect(port, { allowHalfOpen: true });
    assert.equal(await readLine(c), `hello ${echoA.port}`);
    const stopped = proxy.stop(10_000);
    await assert.rejects(connect(port), /ECONNREFUSED/);
    const all = readAll(c);
    c.end('last words\n');
    assert.equal((await all).toString(), 'last words\n');
    await stopped;
  });
});

/** Polls a condition on each turn of the event loop (handle counts change without an event to await). */
async function waitFor(condition: () => boolean, turns = 10_000): Promise<void> {
  for (let i = 0; i < turns && !condition(); i++) await new Promise((r) => setTimeout(r, 1));
}
