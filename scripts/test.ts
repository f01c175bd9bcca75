/**
 * `npm test`: every test file once on the default (native) HTTP engine, then
 * every file that starts an HTTP listener (under test/http, test/metrics,
 * test/admin, test/health and test/cli) again on the http-proxy engine. The
 * engine is chosen here, through DROVER_HTTP_ENGINE (the default engine of
 * listeners that name none), so the same tests run on both without copies;
 * a test that cannot pass on one engine says so by name (`ENGINE` in
 * test/fixtures/harness.ts). Exit code 0 only when both passes pass.
 */
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const testRoot = fileURLToPath(new URL('../test/', import.meta.url));
const HTTP_PARTS = new Set(['http', 'metrics', 'admin', 'health', 'cli']);

const files: string[] = [];
for (const dir of readdirSync(testRoot, { withFileTypes: true })) {
  if (!dir.isDirectory()) continue;
  for (const f of readdirSync(join(testRoot, dir.name))) if (f.endsWith('.test.js')) files.push(join(testRoot, dir.name, f));
}
files.sort();
const httpFiles = files.filter((f) => HTTP_PARTS.has(f.split('/').at(-2)!) && /mode: http\b/.test(readFileSync(f, 'utf8')));

function pass(engine: string, list: string[]): number {
  process.stdout.write(`\n# HTTP engine: ${engine} (${list.length} test files)\n`);
  const run = spawnSync(process.execPath, ['--test', '--test-concurrency=2', ...list], {
    stdio: 'inherit',
    env: { ...process.env, DROVER_HTTP_ENGINE: engine },
  });
  return run.status ?? 1;
}

const started = Date.now();
const native = pass('native', files);
const fallback = pass('http-proxy', httpFiles);
process.stdout.write(`\n# native: ${native === 0 ? 'pass' : 'FAIL'}; http-proxy: ${fallback === 0 ? 'pass' : 'FAIL'}; ${((Date.now() - started) / 1000).toFixed(0)} s in all\n`);
process.exit(native === 0 && fallback === 0 ? 0 : 1);
