import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, describe, it } from 'node:test';
import { closed, connect, readAll, readLine, ROOT, startBackend, type TestBackend } from '../fixtures/harness.js';

interface Cli {
  child: ChildProcess;
  /** Resolves with the first log line (parsed) whose `msg` is `msg`, past or future. */
  log(msg: string): Promise<Record<string, unknown>>;
  exit: Promise<[number | null, NodeJS.Signals | null]>;
}

/** Runs the real `drover` command on a config written to a temporary file. */
function startCli(dir: string, yaml: string): Cli {
  const file = join(dir, `drover-${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(file, yaml);
  const child = spawn(process.execPath, [join(ROOT, 'dist/src/cli.js'), '--config', file], { stdio: ['ignore', 'pipe', 'inherit'] });
  const lines: Record<string, unknown>[] = [];
  const waiters: Array<{ msg: string; resolve: (l: Record<string, unknown>) => void }> = [];
  createInterface({ input: child.stdout! }).on('line', (text) => {
    const line = JSON.parse(text) as Record<string, unknown>;
    lines.push(line);
    for (const w of waiters.filter((w) => w.msg === line.msg)) {
      waiters.splice(waiters.indexOf(w), 1);
      w.resolve(line);
    }
  });
  return {
    child,
    log: (msg) =>
      new Promise((resolve) => {
        const seen = lines.find((l) => l.msg === msg);
        if (seen) resolve(seen);
        else waiters.push({ msg, resolve });
      }),
    exit: once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>,
  };
}

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
