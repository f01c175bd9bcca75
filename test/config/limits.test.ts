import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseConfig } from '../../src/config/load.js';
import type { ServiceConfig } from '../../src/config/schema.js';
import { problemAt, problemsIn, where, withService, yaml } from './helpers.js';

/** A config whose service `web` has `staticLines` as its members (from line 4). */
function withMembers(...staticLines: string[]): string {
  return yaml(
    'services:', //                            1
    '  web:', //                               2
    '    static:', //                          3
    ...staticLines, //                         4..
    'listeners:',
    '  - bind: 127.0.0.1:8080',
    '    service: web',
  );
}

async function web(text: string): Promise<ServiceConfig> {
  const config = await parseConfig(text, '/nonexistent/drover.yaml');
  return config.services.get('web')!;
}

describe('service queue', () => {
  it('defaults to 1000 requests waiting up to 5s', async () => {
    assert.deepEqual((await web(withService())).queue, { size: 1000, timeout: 5_000 });
    assert.deepEqual((await web(withService('    queue: {}'))).queue, { size: 1000, timeout: 5_000 });
  });

  it('reads size and timeout, together or alone', async () => {
    assert.deepEqual((await web(withService('    queue: { size: 50, timeout: 250ms }'))).queue, { size: 50, timeout: 250 });
    assert.deepEqual((await web(withService('    queue: { size: 10 }'))).queue, { size: 10, timeout: 5_000 });
    assert.deepEqual((await web(withService('    queue:', '      timeout: 1m'))).queue, { size: 1000, timeout: 60_000 });
  });

  it('accepts size 0 (no queue: 503 at once) and 1,000,000', async () => {
    assert.equal((await web(withService('    queue: { size: 0 }'))).queue.size, 0);
    assert.equal((await web(withService('    queue: { size: 1000000 }'))).queue.size, 1_000_000);
  });

  it('refuses a negative, too large or fractional size, each at its value', async () => {
    for (const value of ['-1', '1000001', '1.5', 'many']) {
      const problems = await problemsIn(withService(`    queue: { size: ${value} }`));
      assert.deepEqual(problems.map(where), ['4:20 services.web.queue.size'], value);
      assert.match(problems[0]!.message, /^expected a whole number from 0 to 1000000, got /, value);
    }
  });

  it('refuses a zero timeout and a bare number', async () => {
    const problems = await problemsIn(
      yaml(
        'services:', //                                   1
        '  web:', //                                      2
        '    static: [127.0.0.1:9001]', //                3
        '    queue: { timeout: 0s }', //                  4
        '  api:', //                                      5
        '    static: [127.0.0.1:9002]', //                6
        '    queue: { timeout: 5 }', //                   7
        'listeners:',
        '  - bind: 127.0.0.1:8080',
        '    service: web',
      ),
    );
    assert.deepEqual(problems.map(where), ['4:23 services.web.queue.timeout', '7:23 services.api.queue.timeout']);
    assert.equal(problems[0]!.message, 'must be longer than 0');
    assert.match(problems[1]!.message, /^expected a duration like 500ms, 2s or 1m .*got number 5$/);
  });

  it('reports every problem of the block in one pass, with a hint for a misspelt key', async () => {
    const problems = await problemsIn(withService('    queue:', '      sise: 10', '      timeout: never'));
    assert.deepEqual(problems.map(where), ['5:7 services.web.queue.sise', '6:16 services.web.queue.timeout']);
    assert.match(problems[0]!.message, /did you mean "size"\?/);
  });

  it('refuses a queue that is not a mapping', async () => {
    const problems = await problemsIn(withService('    queue: 100'));
    assert.deepEqual(problems.map(where), ['4:12 services.web.queue']);
    assert.match(problems[0]!.message, /expected a mapping, got number 100/);
  });
});

describe('member maxConnections', () => {
  it('is absent (no limit) unless given, and read from a static map entry', async () => {
    const s = await web(withMembers('      - 127.0.0.1:9001', '      - { address: 127.0.0.1:9002, weight: 2, maxConnections: 100 }', '      - { address: 127.0.0.1:9003 }'));
    assert.deepEqual(s.static, [
      { host: '127.0.0.1', port: 9001, weight: 1 },
      { host: '127.0.0.1', port: 9002, weight: 2, maxConnections: 100 },
      { host: '127.0.0.1', port: 9003, weight: 1 },
    ]);
    assert.equal('maxConnections' in s.static[0]!, false);
  });

  it('accepts 1 and 1,000,000', async () => {
    const s = await web(withMembers('      - { address: 127.0.0.1:9001, maxConnections: 1 }', '      - { address: 127.0.0.1:9002, maxConnections: 1000000 }'));
    assert.deepEqual(s.static.map((m) => m.maxConnections), [1, 1_000_000]);
  });

  it('refuses 0, too large, fractional and text values at the value, along with other problems', async () => {
    const problems = await problemsIn(
      withMembers(
        '      - { address: 127.0.0.1:9001, maxConnections: 0 }', //        4
        '      - { address: 127.0.0.1:9002, maxConnections: 1000001 }', //  5
        '      - { address: 127.0.0.1:9003, maxConnections: 2.5 }', //      6
        '      - { address: 127.0.0.1:9004, maxConnections: lots }', //     7
        '      - { address: 127.0.0.1:9005, maxConection: 5 }', //          8
      ),
    );
    assert.deepEqual(problems.map(where), [
      '4:52 services.web.static[0].maxConnections',
      '5:52 services.web.static[1].maxConnections',
      '6:52 services.web.static[2].maxConnections',
      '7:52 services.web.static[3].maxConnections',
      '8:36 services.web.static[4].maxConection',
    ]);
    assert.equal(problemAt(problems, 'services.web.static[0].maxConnections').message, 'expected a whole number from 1 to 1000000, got number 0');
    assert.match(problemAt(problems, 'services.web.static[4].maxConection').message, /did you mean "maxConnections"\?/);
  });
});
