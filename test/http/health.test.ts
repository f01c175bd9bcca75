import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { eventually, request, startHttpBackend, startProxy, type TestBackend } from '../fixtures/harness.js';

describe('HTTP draining and passive ejection', () => {
  let good: TestBackend;
  let other: TestBackend;
  let sick: TestBackend;
  before(async () => {
    [good, other, sick] = await Promise.all([startHttpBackend(), startHttpBackend(), startHttpBackend('failing')]);
  });
  after(async () => {
    await Promise.all([good.stop(), other.stop(), sick.stop()]);
  });

  it('lets a drained backend finish its request in flight while new requests go elsewhere', async () => {
    const proxy = await startProxy(`
services: { s: { static: [127.0.0.1:${good.port}, 127.0.0.1:${other.port}], retries: 0 } }
listeners: [ { name: web, mode: http, bind: 127.0.0.1:0, routes: [ { service: s } ] } ]`);
    try {
      const states = proxy.drover.services.get('s')!.states;
      // The slow request lands on whichever backend is next; drain that one.
      const slow = request(proxy.port(), { path: '/slow?ms=400' });
      await eventually(() => states.active(`127.0.0.1:${good.port}`) + states.active(`127.0.0.1:${other.port}`) === 1, 'the slow request started');
      const busy = states.active(`127.0.0.1:${good.port}`) === 1 ? good : other;
      const idle = busy === good ? other : good;
      states.setDraining(`127.0.0.1:${busy.port}`, true);
      for (let i = 0; i < 6; i++) assert.equal((await request(proxy.port())).headers['x-backend'], String(idle.port));
      const done = await slow;
      assert.equal(done.status, 200);
      assert.equal(done.headers['x-backend'], String(busy.port));
    } finally {
      await proxy.stop();
    }
  });

  it('ejects a backend after consecutive 5xx and brings it back after its ejection time, for longer the second time', async () => {
    const proxy = await startProxy(`
services:
  s:
    static: [127.0.0.1:${good.port}, 127.0.0.1:${sick.port}]
    retries: 0
    outlier: { consecutiveFailures: 3, baseEjection: 1s, maxEjectedPercent: 50 }
listeners: [ { name: web, mode: http, bind: 127.0.0.1:0, routes: [ { service: s } ] } ]`);
    try {
      const states = proxy.drover.services.get('s')!.states;
      const sickId = `127.0.0.1:${sick.port}`;
      const statuses: number[] = [];
      for (let i = 0; i < 6; i++) statuses.push((await request(proxy.port())).status);
      assert.deepEqual(statuses.filter((s) => s === 500).length, 3, 'round robin sent the sick backend three requests');
      const until = states.ejectedUntil(sickId);
      assert.ok(until !== undefined && Math.abs(until - Date.now() - 1000) < 200, 'ejected for baseEjection');
      for (let i = 0; i < 10; i++) assert.equal((await request(proxy.port())).status, 200, 'no request reaches the ejected backend');
      await eventually(() => states.usable(sickId), 'the ejection ends', 3000);
      const again: number[] = [];
      for (let i = 0; i < 6; i++) again.push((await request(proxy.port())).status);
      assert.equal(again.filter((s) => s === 500).length, 3, 'back in rotation until ejected again');
      const second = states.ejectedUntil(sickId)! - Date.now();
      assert.ok(second > 1500 && second <= 2000, `second ejection lasts twice as long (${second} ms left)`);
    } finally {
      await proxy.stop();
    }
  });

  it('counts refused connections as failures too', async () => {
    const proxy = await startProxy(`
services:
  s:
    static: [127.0.0.1:${good.port}, 127.0.0.1:1]
    retries: 1
    outlier: { consecutiveFailures: 2, baseEjection: 10s }
listeners: [ { name: web, mode: http, bind: 127.0.0.1:0, routes: [ { service: s } ] } ]`);
    try {
      for (let i = 0; i < 4; i++) assert.equal((await request(proxy.port())).status, 200);
      assert.ok(proxy.drover.services.get('s')!.states.ejectedUntil('127.0.0.1:1') !== undefined);
    } finally {
      await proxy.stop();
    }
  });
});
