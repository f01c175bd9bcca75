import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { loadConfig } from '../../src/config/load.js';
import { ConfigInvalidError, type ConfigProblem } from '../../src/errors.js';
import type { Backend, StrategyEnv } from '../../strategies/index.js';
import { repoRoot, tempDir, where, yaml } from './helpers.js';

const EXAMPLE = join(repoRoot, 'config', 'strategies', 'weighted-random.js');

/** A config whose service `web` uses `strategyLines` (starting on line 4). */
function config(...strategyLines: string[]): string {
  return yaml(
    'services:', //                          1
    '  web:', //                             2
    '    static: [127.0.0.1:9001, 127.0.0.1:9002]', // 3
    ...strategyLines, //                     4..
    'listeners:',
    '  - bind: 127.0.0.1:8080',
    '    service: web',
  );
}

/** An environment with two backends, for building a loaded strategy. */
function env(options: Readonly<Record<string, unknown>>): StrategyEnv {
  const backends: Backend[] = [
    { id: '127.0.0.1:9001', host: '127.0.0.1', port: 9001, weight: 1, meta: {} },
    { id: '127.0.0.1:9002', host: '127.0.0.1', port: 9002, weight: 1, meta: {} },
  ];
  return {
    backends,
    state: { usable: () => true, active: () => 0, weight: (b) => b.weight, ramp: () => 1, latency: () => undefined, report: () => undefined },
    options,
    random: () => 0,
    now: () => 0,
    keep: (_key, init) => init(),
  };
}

describe('custom strategy modules', () => {
  let tmp: ReturnType<typeof tempDir>;
  /** Writes `text` as a config file in the temp folder and returns its path. */
  let write: (name: string, text: string) => string;
  /** The problems loading `file` must raise. */
  const problemsOf = async (file: string): Promise<readonly ConfigProblem[]> => {
    const err = await loadConfig(file).then(
      () => assert.fail(`${file} was accepted; expected DROVER_CONFIG_INVALID`),
      (e: unknown) => e,
    );
    assert.ok(err instanceof ConfigInvalidError, `expected ConfigInvalidError, got ${String(err)}`);
    assert.equal(err.code, 'DROVER_CONFIG_INVALID');
    return err.problems;
  };

  before(() => {
    tmp = tempDir();
    mkdirSync(join(tmp.dir, 'strategies'));
    copyFileSync(EXAMPLE, join(tmp.dir, 'strategies', 'weighted-random.js'));
    writeFileSync(join(tmp.dir, 'strategies', 'no-factory.js'), 'export const notAFactory = 1;\n');
    writeFileSync(
      join(tmp.dir, 'strategies', 'default-export.js'),
      'export default function first(env) { return { candidates: (ctx) => env.backends.slice(0, ctx.limit) }; }\n',
    );
    writeFileSync(join(tmp.dir, 'strategies', 'throws.js'), "export function create() { throw new Error('boom'); }\n");
    write = (name, text) => {
      const file = join(tmp.dir, name);
      writeFileSync(file, text);
      return file;
    };
  });
  after(() => tmp.remove());

  it('loads a module given relative to the config file, with its options, and builds it', async () => {
    const file = write('relative.yaml', config('    strategy: { module: ./strategies/weighted-random.js, options: { skew: 2 } }'));
    const loaded = await loadConfig(file);
    const strategy = loaded.services.get('web')!.strategy;
    assert.equal(strategy.label, './strategies/weighted-random.js');
    assert.deepEqual(strategy.options, { skew: 2 });
    assert.equal(typeof strategy.factory, 'function');
    const picked = strategy.factory(env(strategy.options)).candidates({ limit: 2 });
    assert.deepEqual(picked.map((b) => b.id).sort(), ['127.0.0.1:9001', '127.0.0.1:9002']);
  });

  it('loads a module given by absolute path', async () => {
    const file = write('absolute.yaml', config('    strategy:', `      module: ${JSON.stringify(EXAMPLE)}`, '      options: { skew: 1 }'));
    const strategy = (await loadConfig(file)).services.get('web')!.strategy;
    assert.equal(strategy.label, EXAMPLE);
    assert.equal(strategy.factory(env(strategy.options)).candidates({ limit: 1 }).length, 1);
  });

  it('accepts a factory given as the default export', async () => {
    const file = write('default.yaml', config('    strategy: { module: ./strategies/default-export.js }'));
    const strategy = (await loadConfig(file)).services.get('web')!.strategy;
    assert.deepEqual(
      strategy.factory(env({})).candidates({ limit: 1 }).map((b) => b.id),
      ['127.0.0.1:9001'],
    );
  });

  it('refuses a missing module file at the module key, naming the path resolved from the config folder', async () => {
    const file = write('missing.yaml', config('    strategy:', '      module: ./strategies/missing.js'));
    const problems = await problemsOf(file);
    assert.deepEqual(problems.map(where), ['5:15 services.web.strategy.module']);
    assert.equal(problems[0]!.file, file);
    assert.match(problems[0]!.message, /cannot load strategy module/);
    assert.ok(problems[0]!.message.includes(join(tmp.dir, 'strategies', 'missing.js')), problems[0]!.message);
  });

  it('resolves the module against the config folder, not the working directory', async () => {
    // Same relative path, but from a folder with no strategies/ next to it.
    const other = tempDir();
    try {
      const file = join(other.dir, 'drover.yaml');
      writeFileSync(file, config('    strategy: { module: ./strategies/weighted-random.js }'));
      const problems = await problemsOf(file);
      assert.deepEqual(
        problems.map((p) => p.path),
        ['services.web.strategy.module'],
      );
      assert.ok(problems[0]!.message.includes(join(other.dir, 'strategies', 'weighted-random.js')), problems[0]!.message);
    } finally {
      other.remove();
    }
  });

  it('refuses a module with no factory export at the module key', async () => {
    const file = write('no-factory.yaml', config('    strategy:', '      module: ./strategies/no-factory.js'));
    const problems = await problemsOf(file);
    assert.deepEqual(problems.map(where), ['5:15 services.web.strategy.module']);
    assert.match(problems[0]!.message, /must export a factory function/);
  });

  it("refuses options the module's factory rejects, naming the option", async () => {
    const file = write('bad-option.yaml', config('    strategy:', '      module: ./strategies/weighted-random.js', '      options:', '        skw: 2'));
    const problems = await problemsOf(file);
    // Located at the option's own key, as for built-in strategies.
    assert.deepEqual(problems.map(where), ['7:9 services.web.strategy.options.skw']);
    assert.match(problems[0]!.message, /unknown option/);
  });

  it('refuses a module whose factory throws when built, as a config problem', async () => {
    const file = write('throws.yaml', config('    strategy: { module: ./strategies/throws.js }'));
    const problems = await problemsOf(file);
    assert.deepEqual(problems.map(where), ['4:15 services.web.strategy']);
    assert.match(problems[0]!.message, /failed to build: boom/);
  });

  it('refuses an empty module path', async () => {
    const file = write('empty-module.yaml', config('    strategy:', '      module: ""'));
    const problems = await problemsOf(file);
    assert.deepEqual(problems.map(where), ['5:15 services.web.strategy.module']);
  });
});
