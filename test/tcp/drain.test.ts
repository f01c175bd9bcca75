import assert from 'node:assert/strict';
import { once } from 'node:events';
import { after, before, describe, it } from 'node:test';
import { closed, connect, eventually, readLine, startBackend, startProxy, type TestBackend } from '../fixtures/harness.js';

describe('draining TCP backends', () => {
  let a: TestBackend;
  let b: TestBackend;
  before(async () => {
    [a, b] = await Promise.all([startBackend('echo'), startBackend('echo')]);
  });
  after(async () => {
    await Promise.all([a.stop(), b.stop()]);
  });

  const config = (drainTimeout: string, members = [a, b]) => `
drainTimeout: ${drainTimeout}
services: { s: { static: [${members.map((m) => `127.0.0.1:${m.port}`).join(', ')}] } }
listeners: [ { bind: 127.0.0.1:0, service: s } ]`;

  /** A connection through the proxy that landed on backend `on`, and its greeting consumed. */
  async function connectionTo(port: number, on: TestBackend) {
    for (let i = 0; i < 10; i++) {
      const c = await connect(port);
      if ((await readLine(c)) === `hello ${on.port}`) return c;
      c.destroy();
      await closed(c);
    }
    throw new Error(`no connection reached ${on.port}`);
  }

  async function echoes(c: import('node:net').Socket, text: string): Promise<boolean> {
    c.write(text + '\n');
    c.resume();
    return (await readLine(c)) === text;
  }

  it('lets a drained backend’s open connection finish while new ones go elsewhere', async () => {
    const proxy = await startProxy(config('30s'));
    try {
      const open = await connectionTo(proxy.port(), a);
      proxy.drover.services.get('s')!.states.setDraining(`127.0.0.1:${a.port}`, true);
      for (let i = 0; i < 6; i++) {
        const c = await connect(proxy.port());
        assert.equal(await readLine(c), `hello ${b.port}`);
        c.destroy();
      }
      assert.equal(await echoes(open, 'still here'), true);
      open.end();
      await closed(open);
    } finally {
      await proxy.stop();
    }
  });

  it('closes a drained backend’s connections at drainTimeout and leaves the others open', async () => {
    const proxy = await startProxy(config('300ms'));
    try {
      const onA = await connectionTo(proxy.port(), a);
      const onB = await connectionTo(proxy.port(), b);
      const started = Date.now();
      proxy.drover.services.get('s')!.states.setDraining(`127.0.0.1:${a.port}`, true);
      await once(onA, 'close');
      const waited = Date.now() - started;
      assert.ok(waited >= 290, `closed after ${waited} ms, before the deadline`);
      assert.equal(await echoes(onB, 'untouched'), true);
      onB.destroy();
    } finally {
      await proxy.stop();
    }
  });

  it('closes the connections of a service a reload removed at drainTimeout', async () => {
    const two = (services: string, service: string) => `
drainTimeout: 300ms
services: { ${services} }
listeners: [ { name: l, bind: 127.0.0.1:0, service: ${service} } ]`;
    const proxy = await startProxy(two(`a: { static: [127.0.0.1:${a.port}] }, b: { static: [127.0.0.1:${b.port}] }`, 'a'));
    try {
      const onA = await connectionTo(proxy.port(), a);
      await proxy.reload(two(`b: { static: [127.0.0.1:${b.port}] }`, 'b'));
      assert.equal(await echoes(onA, 'still open'), true);
      const c = await connect(proxy.port());
      assert.equal(await readLine(c), `hello ${b.port}`, 'the same listener now sends new clients to b');
      c.destroy();
      await once(onA, 'close');
    } finally {
      await proxy.stop();
    }
  });

  it('drains a backend removed by a reload: its open connection works until drainTimeout', async () => {
    const proxy = await startProxy(config('400ms'));
    try {
      const onA = await connectionTo(proxy.port(), a);
      await proxy.reload(config('400ms', [b]));
      assert.equal(await echoes(onA, 'after the reload'), true);
      const c = await connect(proxy.port());
      assert.equal(await readLine(c), `hello ${b.port}`);
      c.destroy();
      await once(onA, 'close');
      const states = proxy.drover.services.get('s')!.states;
      // The upstream side closes a moment after the client side.
      await eventually(() => !states.ids().includes(`127.0.0.1:${a.port}`), 'the removed backend is forgotten once closed');
    } finally {
      await proxy.stop();
    }
  });
});
