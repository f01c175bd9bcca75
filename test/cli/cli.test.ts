import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

/** The repository root (this file runs from dist/test/cli/). */
const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));
const CLI = join(repoRoot, 'dist', 'src', 'cli.js');

interface Result {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs `drover ...args` to completion. A command that should exit but keeps
 * running (say, a proxy started by mistake) is killed after 15 s, and the
 * test then fails on its exit code.
 */
function drover(args: string[], cwd = repoRoot): Promise<Result> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { cwd, stdio: ['ignore', 'pipe', 'pipe'], timeout: 15_000, killSignal: 'SIGKILL' });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

/** A port that was free a moment ago on 127.0.0.1. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** Whether 127.0.0.1:port can be bound now (nothing else holds it). */
function canBind(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

const version = (JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { version: string }).version;

describe('drover command line', () => {
  let dir: string;
  /** Writes a config file into the temp folder and returns its path. */
  const write = (name: string, text: string): string => {
    const file = join(dir, name);
    writeFileSync(file, text);
    return file;
  };

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'drover-cli-test-'));
    mkdirSync(join(dir, 'strategies'));
    copyFileSync(join(repoRoot, 'config', 'strategies', 'weighted-random.js'), join(dir, 'strategies', 'weighted-random.js'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  describe('--help and --version', () => {
    it('prints usage on stdout and exits 0 for --help and -h', async () => {
      for (const flag of ['--help', '-h']) {
        const r = await drover([flag]);
        assert.equal(r.code, 0, flag);
        assert.match(r.stdout, /^Usage: drover/, flag);
        assert.match(r.stdout, /drover check --config FILE/, flag);
        assert.match(r.stdout, /--version/, flag);
        assert.equal(r.stderr, '', flag);
      }
    });

    it("prints package.json's version and exits 0 for --version and -v", async () => {
      for (const flag of ['--version', '-v']) {
        const r = await drover([flag]);
        assert.equal(r.code, 0, flag);
        assert.equal(r.stdout, `${version}\n`, flag);
        assert.equal(r.stderr, '', flag);
      }
    });
  });

  describe('check', () => {
    it('summarises a good config: listeners, services and strategies, and exits 0', async () => {
      const file = write(
        'good.yaml',
        [
          'drainTimeout: 10s',
          'services:',
          '  web:',
          '    static: [127.0.0.1:9001, { address: 127.0.0.1:9002, weight: 3 }]',
          '    strategy: { module: ./strategies/weighted-random.js, options: { skew: 2 } }',
          '  db:',
          '    static: [127.0.0.1:5432]',
          '    strategy: least-connections',
          '    retries: 0',
          'listeners:',
          '  - name: front',
          '    bind: 127.0.0.1:8080',
          '    service: web',
          '  - bind: 127.0.0.1:6432',
          '    service: db',
          '    proxyProtocol: v1',
          '',
        ].join('\n'),
      );
      const r = await drover(['check', '--config', file]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stderr, '');
      const lines = r.stdout.split('\n');
      assert.equal(lines[0], `config ok: ${file}`);
      const has = (re: RegExp) => assert.ok(lines.some((l) => re.test(l)), `no line matches ${re}:\n${r.stdout}`);
      has(/^\s+front\s+tcp\s+127\.0\.0\.1:8080 -> web\b/);
      has(/^\s+127\.0\.0\.1:6432\s+tcp\s+127\.0\.0\.1:6432 -> db\b.*proxyProtocol v1/);
      has(/^\s+web\s+strategy \.\/strategies\/weighted-random\.js\b/);
      has(/^\s+db\s+strategy least-connections, retries 0\b/);
      has(/127\.0\.0\.1:9002 w3/);
      has(/^drainTimeout 10s, logLevel info$/);
    });

    it('accepts -c and a config path relative to the working directory', async () => {
      write('rel.yaml', 'services:\n  web:\n    static: [127.0.0.1:9001]\nlisteners:\n  - bind: 127.0.0.1:8080\n    service: web\n');
      const r = await drover(['check', '-c', 'rel.yaml'], dir);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /strategy round-robin/);
    });

    it('checks the reference config/full.yaml', async () => {
      const r = await drover(['check', '--config', join('config', 'full.yaml')]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /^\s+pg\s+tcp\s+127\.0\.0\.1:6432 -> db/m);
      assert.match(r.stdout, /strategy weighted-round-robin/);
      assert.match(r.stdout, /^\s+health http GET \/healthz every 2s, rise 2 fall 3$/m);
      assert.match(r.stdout, /^\s+outlier 5 failures, ejection 30s, agent port 9777 every 2s$/m);
    });

    it('prints every problem of a bad config as file:line:column on stderr, exits 1 and binds nothing', async () => {
      const port = await freePort();
      const file = write(
        'bad.yaml',
        [
          'services:', //                            1
          '  web:', //                               2
          '    static: [127.0.0.1:9001]', //         3
          '    retires: 3', //                       4: typo
          'listeners:', //                           5
          `  - bind: 127.0.0.1:${port}`, //          6
          '    service: web', //                     7
          `  - bind: 0.0.0.0:${port}`, //            8: collides with line 6
          '    service: api', //                     9: unknown service
          '',
        ].join('\n'),
      );
      const r = await drover(['check', '--config', file]);
      assert.equal(r.code, 1);
      assert.equal(r.stdout, '', 'nothing on stdout: no summary, no log lines');
      const lines = r.stderr.trimEnd().split('\n');
      const located = lines.filter((l) => l.startsWith(`${file}:`)).map((l) => l.slice(file.length + 1).split(': ').slice(0, 2).join(': '));
      assert.deepEqual(located, ['4:5: services.web.retires', `8:11: listeners[1].bind`, '9:14: listeners[1].service']);
      assert.match(lines.at(-1)!, /^DROVER_CONFIG_INVALID: 3 problem\(s\) in /);
      assert.ok(await canBind(port), `port ${port} is still free`);
    });

    it('names the file on stderr as it was given on the command line', async () => {
      write('bad-rel.yaml', 'services:\n  web:\n    static: [127.0.0.1:9001]\n    retries: many\nlisteners:\n  - bind: 127.0.0.1:8080\n    service: web\n');
      const r = await drover(['check', '--config', 'bad-rel.yaml'], dir);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /^bad-rel\.yaml:4:14: services\.web\.retries: /m);
    });

    it('reports an empty file as a config problem and exits 1', async () => {
      const file = write('empty.yaml', '');
      const r = await drover(['check', '--config', file]);
      assert.equal(r.code, 1);
      assert.ok(r.stderr.startsWith(`${file}:1:1: `), r.stderr);
      assert.match(r.stderr, /DROVER_CONFIG_INVALID/);
    });

    it('reports a file that cannot be read as DROVER_CONFIG_UNREADABLE and exits 1', async () => {
      const file = join(dir, 'does-not-exist.yaml');
      const r = await drover(['check', '--config', file]);
      assert.equal(r.code, 1);
      assert.equal(r.stdout, '');
      assert.ok(r.stderr.startsWith(`DROVER_CONFIG_UNREADABLE: ${file}: cannot read config`), r.stderr);
    });
  });

  describe('start', () => {
    it('exits 1 on a bad config before binding any listener', async () => {
      // The listener itself is valid; only the service has a problem, so a
      // start that bound valid listeners before validating would show here.
      const port = await freePort();
      const file = write(
        'bad-start.yaml',
        ['services:', '  web:', '    static: [127.0.0.1:9001]', '    retires: 3', 'listeners:', `  - bind: 127.0.0.1:${port}`, '    service: web', ''].join('\n'),
      );
      for (const args of [['--config', file], ['start', '--config', file]]) {
        const r = await drover(args);
        assert.equal(r.code, 1, args.join(' '));
        assert.doesNotMatch(r.stdout, /listener started/, args.join(' '));
        assert.equal(r.stdout, '', args.join(' '));
        assert.match(r.stderr, new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:4:5: services\\.web\\.retires: `, 'm'));
        assert.ok(await canBind(port), `port ${port} is still free`);
      }
    });

    it('starts a good config: binds its listener and logs "listener started" (the line the bad-config test looks for)', { timeout: 20_000 }, async () => {
      const file = write('start.yaml', 'services:\n  web:\n    static: [127.0.0.1:9001]\nlisteners:\n  - name: front\n    bind: 127.0.0.1:0\n    service: web\n');
      const child = spawn(process.execPath, [CLI, '--config', file], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
      const exited = new Promise<void>((resolve) => child.on('close', () => resolve()));
      try {
        const started = await new Promise<Record<string, unknown>>((resolve, reject) => {
          child.stdout.setEncoding('utf8').on('data', (d: string) => {
            stdout += d;
            const line = stdout.split('\n').find((l) => l.includes('"listener started"'));
            if (line) resolve(JSON.parse(line) as Record<string, unknown>);
          });
          child.on('close', (code) => reject(new Error(`drover exited ${code} before starting:\n${stdout}\n${stderr}`)));
        });
        assert.equal(started.listener, 'front');
        assert.equal(started.service, 'web');
        const bind = /^127\.0\.0\.1:([1-9]\d*)$/.exec(String(started.bind));
        assert.ok(bind, `bind ${String(started.bind)}`);
        assert.equal(await canBind(Number(bind[1])), false, 'the logged port is held by drover');
      } finally {
        // This test is about binding, not shutdown.
        child.kill('SIGKILL');
        await exited;
      }
    });
  });

  describe('usage errors', () => {
    it('exits 2 with DROVER_USAGE for an unknown command', async () => {
      const r = await drover(['frobnicate', '--config', 'x.yaml']);
      assert.equal(r.code, 2);
      assert.equal(r.stdout, '');
      assert.match(r.stderr, /^DROVER_USAGE: unknown command: frobnicate\n/);
      assert.match(r.stderr, /Usage: drover/);
    });

    it('exits 2 with DROVER_USAGE when --config is missing, for start and check', async () => {
      for (const args of [[], ['start'], ['check']]) {
        const r = await drover(args);
        assert.equal(r.code, 2, args.join(' '));
        assert.match(r.stderr, /^DROVER_USAGE: --config FILE is required\n/, args.join(' '));
      }
    });

    it('exits 2 with DROVER_USAGE for an unknown option, a missing option value, or extra words', async () => {
      for (const args of [['--bogus'], ['check', '--config'], ['check', 'extra', '--config', 'x.yaml']]) {
        const r = await drover(args);
        assert.equal(r.code, 2, args.join(' '));
        assert.match(r.stderr, /^DROVER_USAGE: /, args.join(' '));
      }
    });
  });
});
