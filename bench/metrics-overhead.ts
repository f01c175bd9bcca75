/**
 * What metrics cost per request: the same HTTP load through an in-process
 * Drover without and with `admin:` (which turns the metrics on), in
 * interleaved rounds, against one backend in a child process. The load
 * generator (autocannon's programmatic API) runs in another child process,
 * so this process is Drover alone and its CPU time per request can be
 * measured too: on a shared machine, throughput swings by tens of percent
 * from round to round, while CPU per request stays put. With metrics on,
 * the registry is scraped once a second (a busy Prometheus), so collect()
 * costs are included.
 *
 *   npm run build && node dist/bench/metrics-overhead.js [--rounds 3] [--duration 10] [--connections 50] [--access-log]
 *
 * `--access-log` adds a third variant: metrics and an access log to a file in
 * a temporary folder. Not part of `npm test`.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import { parseConfig } from '../src/config/load.js';
import { Drover } from '../src/drover.js';
import { Logger } from '../src/log.js';

type Variant = 'without metrics' | 'with metrics' | 'metrics + access log';

interface Load {
  requests: number;
  rps: number;
  problems: number;
}

function option(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}

/** The backend: a child process answering every request with a small fixed body. */
function backendMain(): void {
  const body = Buffer.from('{"ok":true,"padding":"' + 'x'.repeat(200) + '"}');
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': body.length });
      res.end(body);
    });
  });
  server.keepAliveTimeout = 60_000;
  server.listen(0, '127.0.0.1', () => process.send?.({ port: (server.address() as { port: number }).port }));
  process.on('disconnect', () => process.exit(0));
}

/** The load generator: a child process that runs autocannon on request and reports the result. */
function loadMain(): void {
  process.on('message', (m: { url: string; connections: number; duration: number }) => {
    void autocannon({ url: m.url, connections: m.connections, duration: m.duration }).then((r) =>
      process.send?.({ requests: r.requests.total, rps: r.requests.average, problems: r.errors + r.timeouts + r.non2xx } satisfies Load),
    );
  });
  process.on('disconnect', () => process.exit(0));
}

async function run(variant: Variant, backendPort: number, load: ChildProcess, durationS: number, connections: number, dir: string) {
  const yaml = `
${variant !== 'without metrics' ? 'admin: { listen: 127.0.0.1:0 }' : ''}
${variant === 'metrics + access log' ? `accessLog: ${join(dir, `access-${Date.now()}.log`)}` : ''}
services: { web: { static: [127.0.0.1:${backendPort}] } }
listeners: [ { name: web, mode: http, bind: 127.0.0.1:0, service: web } ]`;
  const config = await parseConfig(yaml, join(dir, 'bench.yaml'), 'bench.yaml');
  const drover = await Drover.start(config, { log: new Logger('error', () => {}) });
  const port = Number(drover.listeners[0]!.address.split(':').pop());
  const scraper = drover.metrics ? setInterval(() => void drover.metrics!.text(), 1000) : undefined;
  try {
    const done = once(load, 'message') as Promise<[Load]>;
    const cpu = process.cpuUsage();
    load.send({ url: `http://127.0.0.1:${port}/`, connections, duration: durationS });
    const [result] = await done;
    const used = process.cpuUsage(cpu);
    if (result.problems) throw new Error(`${variant}: ${result.problems} errors, timeouts or non-2xx answers`);
    return { rps: result.rps, cpuUsPerRequest: (used.user + used.system) / result.requests };
  } finally {
    clearInterval(scraper);
    await drover.stop(0);
  }
}

async function main(): Promise<void> {
  const rounds = option('rounds', 3);
  const durationS = option('duration', 10);
  const connections = option('connections', 50);
  const variants: Variant[] = ['without metrics', 'with metrics'];
  if (process.argv.includes('--access-log')) variants.push('metrics + access log');
  const dir = mkdtempSync(join(tmpdir(), 'drover-bench-'));
  const self = fileURLToPath(import.meta.url);
  const backend = fork(self, ['--backend'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const load = fork(self, ['--load'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const [{ port: backendPort }] = (await once(backend, 'message')) as [{ port: number }];
  const results = new Map<Variant, Array<{ rps: number; cpuUsPerRequest: number }>>(variants.map((v) => [v, []]));
  try {
    process.stdout.write(`warming up (${Math.min(5, durationS)} s)...\n`);
    await run('with metrics', backendPort, load, Math.min(5, durationS), connections, dir);
    for (let r = 0; r < rounds; r++) {
      // Alternate the order each round, so no variant always runs first.
      const order = r % 2 === 0 ? variants : [...variants].reverse();
      for (const v of order) {
        const x = await run(v, backendPort, load, durationS, connections, dir);
        results.get(v)!.push(x);
        process.stdout.write(`round ${r + 1}  ${v.padEnd(22)} ${x.rps.toFixed(0).padStart(7)} req/s  ${x.cpuUsPerRequest.toFixed(1).padStart(6)} µs CPU/request\n`);
      }
    }
  } finally {
    backend.kill();
    load.kill();
    rmSync(dir, { recursive: true, force: true });
  }
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const base = results.get('without metrics')!;
  const baseRps = mean(base.map((x) => x.rps));
  const baseCpu = mean(base.map((x) => x.cpuUsPerRequest));
  process.stdout.write(`\n${rounds} rounds of ${durationS} s, ${connections} connections, Node ${process.version}\n`);
  for (const [v, xs] of results) {
    const rps = mean(xs.map((x) => x.rps));
    const cpu = mean(xs.map((x) => x.cpuUsPerRequest));
    process.stdout.write(
      `${v.padEnd(22)} ${rps.toFixed(0).padStart(7)} req/s (ratio ${(rps / baseRps).toFixed(3)})   ` +
        `${cpu.toFixed(1).padStart(6)} µs CPU/request (ratio ${(cpu / baseCpu).toFixed(3)})\n`,
    );
  }
}

if (process.argv.includes('--backend')) backendMain();
else if (process.argv.includes('--load')) loadMain();
else await main();
