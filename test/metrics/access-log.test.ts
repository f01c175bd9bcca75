import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  closed,
  connect,
  eventually,
  freePort,
  readLine,
  request,
  startBackend,
  startHttpBackend,
  startProxy,
  type TestBackend,
} from '../fixtures/harness.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const id = (b: TestBackend | number) => `127.0.0.1:${typeof b === 'number' ? b : b.port}`;

/** The JSON lines of `file` (none while it does not exist). */
function lines(file: string): Array<Record<string, unknown>> {
  if (!existsSync(file)) return [];
  const text = readFileSync(file, 'utf8');
  assert.ok(text === '' || text.endsWith('\n'), 'whole lines only');
  return text
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

/** Waits until `file` has `count` lines, and returns them. */
async function waitForLines(file: string, count: number): Promise<Array<Record<string, unknown>>> {
  await eventually(() => lines(file).length >= count, `${count} access log lines in ${file}`);
  return lines(file);
}

describe('access log', () => {
  let web: TestBackend;
  let echo: TestBackend;
  let dir: string;
  before(async () => {
    [web, echo] = await Promise.all([startHttpBackend(), startBackend('echo')]);
    dir = mkdtempSync(join(tmpdir(), 'drover-access-'));
  });
  after(async () => {
    await Promise.all([web.stop(), echo.stop()]);
    rmSync(dir, { recursive: true, force: true });
  });

  it('writes a JSON line per HTTP request with every field; keeps x-request-id or generates one, and forwards it', async () => {
    const file = join(dir, 'http.log');
    const proxy = await startProxy(`
accessLog: ${file}
services: { web: { static: [${id(web)}] } }
listeners: [ { name: front, mode: http, bind: 127.0.0.1:0, routes: [ { match: { pathPrefix: /echo }, service: web } ] } ]`);
    try {
      const port = proxy.port();
      const given = await request(port, { path: '/echo?x=1', headers: { 'x-request-id': 'abc-123' } });
      assert.equal(given.status, 200);
      assert.equal(JSON.parse(given.body).headers['x-request-id'], 'abc-123', 'kept and forwarded');
      const posted = await request(port, { method: 'POST', path: '/echo/post', body: 'hello' });
      assert.equal(posted.status, 200);
      const generated = JSON.parse(posted.body).headers['x-request-id'] as string;
      assert.match(generated, UUID, 'generated and forwarded');
      const unrouted = await request(port, { path: '/nowhere' });
      assert.equal(unrouted.status, 404);

      const all = await waitForLines(file, 3);
      assert.equal(all.length, 3);
      const byPath = new Map(all.map((l) => [l.path, l]));
      const first = byPath.get('/echo?x=1')!;
      assert.deepEqual(Object.keys(first), ['time', 'listener', 'client', 'method', 'path', 'status', 'service', 'backend', 'durationMs', 'bytesIn', 'bytesOut', 'requestId']);
      assert.ok(!Number.isNaN(Date.parse(first.time as string)));
      assert.equal(first.listener, 'front');
      assert.equal(first.client, '127.0.0.1');
      assert.equal(first.method, 'GET');
      assert.equal(first.status, 200);
      assert.equal(first.service, 'web');
      assert.equal(first.backend, id(web));
      assert.equal(typeof first.durationMs, 'number');
      assert.ok((first.durationMs as number) >= 0);
      assert.equal(first.bytesIn, 0);
      assert.equal(first.bytesOut, Buffer.byteLength(given.body));
      assert.equal(first.requestId, 'abc-123');

      const second = byPath.get('/echo/post')!;
      assert.equal(second.method, 'POST');
      assert.equal(second.bytesIn, 5);
      assert.equal(second.bytesOut, Buffer.byteLength(posted.body));
      assert.equal(second.requestId, generated, 'the logged id is the one the backend received');

      const third = byPath.get('/nowhere')!;
      assert.equal(third.status, 404);
      assert.equal(third.service, null);
      assert.equal(third.backend, null);
      assert.equal(third.bytesOut, 0, "bytes are the backend's: none for Drover's own answers");
      assert.match(third.requestId as string, UUID);
      assert.equal(proxy.drover.metrics, undefined, 'an access log alone creates no metrics');
    } finally {
      await proxy.stop();
    }
  });

  it('writes a line per TCP connection, with bytes each way and no HTTP fields', async () => {
    const file = join(dir, 'tcp.log');
    const dead = await freePort();
    const proxy = await startProxy(`
accessLog: ${file}
services: { echo: { static: [${id(echo)}] }, dead: { static: [${id(dead)}], retries: 0 } }
listeners:
  - { name: raw, bind: 127.0.0.1:0, service: echo }
  - { name: nowhere, bind: 127.0.0.1:0, service: dead }`);
    try {
      const c = await connect(proxy.port('raw'), { allowHalfOpen: true });
      const greeting = await readLine(c);
      assert.equal(greeting, `hello ${echo.port}`);
      c.write('ping\n');
      assert.equal(await readLine(c), 'ping');
      c.end();
      c.resume();
      await closed(c);
      const refused = await connect(proxy.port('nowhere'));
      refused.on('error', () => {});
      await closed(refused);

      const all = await waitForLines(file, 2);
      const line = all.find((l) => l.listener === 'raw')!;
      assert.deepEqual(Object.keys(line), ['time', 'listener', 'client', 'service', 'backend', 'durationMs', 'bytesIn', 'bytesOut']);
      assert.ok(!Number.isNaN(Date.parse(line.time as string)));
      assert.equal(line.client, '127.0.0.1');
      assert.equal(line.service, 'echo');
      assert.equal(line.backend, id(echo));
      assert.equal(line.bytesIn, 5);
      assert.equal(line.bytesOut, Buffer.byteLength(`${greeting}\nping\n`));
      assert.ok((line.durationMs as number) >= 0);
      const failed = all.find((l) => l.listener === 'nowhere')!;
      assert.equal(failed.backend, null);
      assert.equal(failed.bytesIn, 0);
      assert.equal(failed.bytesOut, 0);
    } finally {
      await proxy.stop();
    }
  });

  it('logs an error when the file cannot be opened, and keeps serving without an access log', async () => {
    const file = join(dir, 'no-such-dir', 'deeper', 'access.log');
    const proxy = await startProxy(
      `
accessLog: ${file}
services: { web: { static: [${id(web)}] } }
listeners: [ { name: front, mode: http, bind: 127.0.0.1:0, service: web } ]`,
      'error',
    );
    try {
      assert.equal((await request(proxy.port())).status, 200);
      await eventually(() => proxy.lines.some((l) => l.msg === 'access log failed: continuing without it'), 'the error logged');
      const error = proxy.lines.find((l) => l.msg === 'access log failed: continuing without it')!;
      assert.equal(error.accessLog, file);
      assert.equal((error.error as { code: string }).code, 'ENOENT');
      for (let i = 0; i < 5; i++) assert.equal((await request(proxy.port())).status, 200);
      assert.equal(proxy.lines.filter((l) => l.msg === 'access log failed: continuing without it').length, 1, 'logged once');
      assert.equal(existsSync(file), false);
    } finally {
      await proxy.stop();
    }
  });

  it('follows a reload to another file, reopens the same file on reload (rotation), and stops when the key is removed', async () => {
    const one = join(dir, 'one.log');
    const two = join(dir, 'two.log');
    const config = (accessLog?: string) => `
${accessLog ? `accessLog: ${accessLog}` : ''}
services: { web: { static: [${id(web)}] } }
listeners: [ { name: front, mode: http, bind: 127.0.0.1:0, service: web } ]`;
    const proxy = await startProxy(config(one));
    try {
      const port = proxy.port();
      await request(port, { path: '/echo?n=1' });
      await waitForLines(one, 1);
      await proxy.reload(config(two));
      await request(port, { path: '/echo?n=2' });
      await request(port, { path: '/echo?n=3' });
      assert.deepEqual(
        (await waitForLines(two, 2)).map((l) => l.path),
        ['/echo?n=2', '/echo?n=3'],
      );
      assert.deepEqual(
        lines(one).map((l) => l.path),
        ['/echo?n=1'],
      );
      // Rotation: move the file away, reload with the same config; new lines go to a new file.
      renameSync(two, `${two}.1`);
      await proxy.reload(config(two));
      await request(port, { path: '/echo?n=rotated' });
      assert.deepEqual(
        (await waitForLines(two, 1)).map((l) => l.path),
        ['/echo?n=rotated'],
      );
      assert.equal(lines(`${two}.1`).length, 2);
      await proxy.reload(config());
      assert.equal(proxy.drover.listeners[0]!.observer, undefined, 'nothing left to observe for');
      const res = await request(port, { path: '/echo?n=4' });
      assert.equal(JSON.parse(res.body).headers['x-request-id'], undefined, 'no id is made up without an access log');
      assert.equal(lines(two).length, 1);
    } finally {
      await proxy.stop();
    }
  });
});
