import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { closed, connect, readAll, readLine, startBackend, startCli, type TestBackend } from '../fixtures/harness.js';


describe('drover command: signals', () => {
  let echo: TestBackend;
  let dir: string;
  before(async () => {
    echo = await startBackend('echo');
    dir = mkdtempSync(join(tmpdir(), 'drover-signals-'));
  });
  after(async () => {
    await echo.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const config = (drainTimeout: string) => `
drainTimeout: ${drainTimeout}
services: { s: { static: [127.0.0.1:${echo.port}] } }
listeners: [ { bind: 127.0.0.1:0, service: s } ]
`;

  it('drains on SIGTERM: refuses new clients, finishes open ones, then exits 0', async () => {
    const cli = startCli(dir, config('10s'));
    const port = Number(String((await cli.log('listener started')).bind).split(':').pop());
    await cli.log('drover started');
    const c = await connect(port, { allowHalfOpen: true });
    assert.equal(await readLine(c), `hello ${echo.port}`);
    cli.child.kill('SIGTERM');
    await cli.log('stopping');
    await assert.rejects(connect(port), /ECONNREFUSED/);
    const all = readAll(c);
    c.end('one more\n');
    assert.equal((await all).toString(), 'one more\n');
    assert.deepEqual(await cli.exit, [0, null]);
  });

  it('closes connections still open at drainTimeout, then exits 0', async () => {
    const cli = startCli(dir, config('300ms'));
    const port = Number(String((await cli.log('listener started')).bind).split(':').pop());
    const c = await connect(port);
    assert.equal(await readLine(c), `hello ${echo.port}`);
    c.resume();
    cli.child.kill('SIGTERM');
    await closed(c);
    await cli.log('drain timeout: closing connections');
    assert.deepEqual(await cli.exit, [0, null]);
  });

  it('exits 0 on SIGINT that arrives while it is still starting', async () => {
    const cli = startCli(dir, config('1s'));
    await cli.log('service members');
    cli.child.kill('SIGINT');
    assert.deepEqual(await cli.exit, [0, null]);
    await cli.log('stopped');
  });
});
