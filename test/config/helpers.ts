import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseConfig } from '../../src/config/load.js';
import { ConfigInvalidError, type ConfigProblem } from '../../src/errors.js';

/** The repository root (this file runs from dist/test/config/). */
export const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));

/** How problems name the file in tests that parse text directly. */
export const SHOWN = 'drover.yaml';

/** YAML text from lines, so line N of the file is argument N. */
export function yaml(...lines: string[]): string {
  return lines.join('\n') + '\n';
}

/** A fresh temporary folder, removed by the returned function. */
export function tempDir(): { dir: string; remove: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'drover-config-test-'));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/**
 * Parses `text` and returns the ConfigInvalidError it must raise; fails the
 * test if the config is accepted or a different error is thrown.
 */
export async function invalid(text: string, path = '/nonexistent/drover.yaml'): Promise<ConfigInvalidError> {
  const err: unknown = await parseConfig(text, path, SHOWN).then(
    () => assert.fail('the config was accepted; expected DROVER_CONFIG_INVALID'),
    (e: unknown) => e,
  );
  assert.ok(err instanceof ConfigInvalidError, `expected a ConfigInvalidError, got ${String(err)}`);
  assert.equal(err.code, 'DROVER_CONFIG_INVALID');
  assert.ok(err.problems.length > 0, 'a ConfigInvalidError must list at least one problem');
  return err;
}

/** The problems `text` must raise. */
export async function problemsIn(text: string, path?: string): Promise<readonly ConfigProblem[]> {
  return (await invalid(text, path)).problems;
}

/** Where a problem is, without its message: `line:column path`. */
export function where(p: ConfigProblem): string {
  return `${p.line}:${p.column} ${p.path}`;
}

/** The one problem whose path is `path`; fails when there is none or several. */
export function problemAt(problems: readonly ConfigProblem[], path: string): ConfigProblem {
  const found = problems.filter((p) => p.path === path);
  assert.equal(found.length, 1, `expected one problem at ${path}, got: ${JSON.stringify(problems, null, 2)}`);
  return found[0]!;
}

/** A valid config with one service `web`, one listener, and `extra` lines appended to the service (from line 4). */
export function withService(...extra: string[]): string {
  return yaml(
    'services:', //                            1
    '  web:', //                               2
    '    static: [127.0.0.1:9001]', //         3
    ...extra, //                               4..
    'listeners:',
    '  - bind: 127.0.0.1:8080',
    '    service: web',
  );
}
