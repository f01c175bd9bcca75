/**
 * Differential fuzzing at scale: the comparison of test/http/differential.test.ts
 * (one recording backend, one Drover with a `native` and an `http-proxy`
 * listener, the same generated requests through both) on a larger count.
 *
 *   npm run build && node dist/bench/fuzz.js [--count N] [--seed S] [--from I] [--concurrency C]
 *
 * Prints progress, then the summary: forwarded by both, refused by both, the
 * known differences (each has a todo test) with one example each, and every
 * other difference with its seed, index and raw bytes; `fuzzRequest(seed,
 * index)` in test/fixtures/fuzz-requests.ts rebuilds any of them. Exit code 1
 * when a difference no known one explains turned up.
 */
import { parseArgs } from 'node:util';
import { startRig, summaryText } from '../test/fixtures/differential.js';

const HELP = `Usage: node dist/bench/fuzz.js [OPTIONS]     (after npm run build)

  --count N          requests (default 50000), each through both engines
  --seed S           the seed (default 0x5eed2026; decimal or 0x hex)
  --from I           the first request's index (default 0)
  --concurrency C    requests in flight at once (default 16)
  --limit L          differences printed in full (default 50)
  -h, --help         this text`;

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      count: { type: 'string' },
      seed: { type: 'string' },
      from: { type: 'string' },
      concurrency: { type: 'string' },
      limit: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(`${HELP}\n`);
    return 0;
  }
  const num = (text: string | undefined, fallback: number, what: string): number => {
    if (text === undefined) return fallback;
    const n = Number(text);
    if (!Number.isInteger(n) || n < 0) throw new Error(`--${what}: expected a whole number, got "${text}"`);
    return n;
  };
  const count = num(values.count, 50_000, 'count');
  const seed = num(values.seed, 0x5eed2026, 'seed');
  const from = num(values.from, 0, 'from');
  const concurrency = Math.max(1, num(values.concurrency, 16, 'concurrency'));
  const limit = num(values.limit, 50, 'limit');

  process.stdout.write(`differential fuzzing: ${count} requests from index ${from}, seed ${seed} (0x${(seed >>> 0).toString(16)}), ${concurrency} at a time\n`);
  const rig = await startRig({ concurrency });
  try {
    const started = performance.now();
    const step = Math.max(1000, Math.round(count / 20));
    const s = await rig.run(seed, from, count, (done) => {
      if (done % step === 0 || done === count) process.stdout.write(`  ${done} / ${count} (${((performance.now() - started) / 1000).toFixed(0)} s)\n`);
    });
    process.stdout.write(`${summaryText(s, limit)}\n`);
    return s.differences.length === 0 && s.stray.length === 0 ? 0 : 1;
  } finally {
    await rig.close();
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  },
);
