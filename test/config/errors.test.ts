import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { loadConfig, parseConfig } from '../../src/config/load.js';
import { ConfigInvalidError, ConfigUnreadableError, formatProblem } from '../../src/errors.js';
import { invalid, problemAt, problemsIn, SHOWN, tempDir, where, withService, yaml } from './helpers.js';

/** A valid config whose listeners section is `listenerLines` (starting on line 4). */
function withListeners(...listenerLines: string[]): string {
  return yaml(
    'services:', //                            1
    '  web:', //                               2
    '    static: [127.0.0.1:9001]', //         3
    'listeners:', //                           4
    ...listenerLines, //                       5..
  );
}

describe('config problems are located at file:line:column with their key path', () => {
  it('reports a misspelt key at the key itself, suggesting the right one', async () => {
    const err = await invalid(withService('    retires: 3'));
    assert.equal(err.problems.length, 1);
    const [line] = err.message.split('\n');
    assert.match(line!, /^drover\.yaml:4:5: services\.web\.retires: unknown key/);
    assert.match(line!, /did you mean "retries"\?/);
  });

  it('reports a value of the wrong type at the value, saying what it got', async () => {
    const err = await invalid(withService('    retries: many'));
    assert.equal(err.problems.length, 1);
    assert.match(err.message, /^drover\.yaml:4:14: services\.web\.retries: expected a whole number from 0 to 100, got "many"$/);
  });

  it('gives every problem as a structured record matching the printed line', async () => {
    const err = await invalid(withService('    retries: many'));
    assert.deepEqual(err.problems[0], {
      file: SHOWN,
      line: 4,
      column: 14,
      path: 'services.web.retries',
      message: 'expected a whole number from 0 to 100, got "many"',
    });
    assert.equal(err.message, formatProblem(err.problems[0]!));
  });

  it('locates a misspelt top-level key on line 1 column 1', async () => {
    const problems = await problemsIn(yaml('logLevl: debug', 'services:', '  web:', '    static: [127.0.0.1:9001]', 'listeners:', '  - bind: 127.0.0.1:8080', '    service: web'));
    assert.deepEqual(problems.map(where), ['1:1 logLevl']);
    assert.match(problems[0]!.message, /did you mean "logLevel"/);
  });

  it('locates a misspelt key inside a list item with an indexed path', async () => {
    const problems = await problemsIn(
      yaml(
        'services:',
        '  web:',
        '    static:',
        '      - address: 127.0.0.1:9001',
        '      - address: 127.0.0.1:9002',
        '        wieght: 2',
        'listeners:',
        '  - bind: 127.0.0.1:8080',
        '    service: web',
      ),
    );
    assert.deepEqual(problems.map(where), ['6:9 services.web.static[1].wieght']);
    assert.match(problems[0]!.message, /did you mean "weight"/);
  });

  it('names the file as the caller gave it when loading from disk', async () => {
    const tmp = tempDir();
    try {
      const file = join(tmp.dir, 'bad.yaml');
      writeFileSync(file, withService('    retires: 3'));
      const err = await loadConfig(file).then(
        () => assert.fail('accepted a config with a misspelt key'),
        (e: unknown) => e,
      );
      assert.ok(err instanceof ConfigInvalidError);
      assert.equal(err.problems[0]!.file, file);
      assert.ok(err.message.startsWith(`${file}:4:5: services.web.retires: `), err.message);
    } finally {
      tmp.remove();
    }
  });
});

describe('several problems are reported together', () => {
  it('lists every problem in one error, in file order, one line each', async () => {
    const err = await invalid(
      yaml(
        'drainTimeout: 30', //                              1: bare number
        'logLevel: loud', //                                2: not a level
        'services:', //                                     3
        '  web:', //                                        4
        '    static: [127.0.0.1:9001]', //                  5
        '    retries: -1', //                               6: out of range
        'listeners:', //                                    7
        '  - bind: 127.0.0.1:8080', //                      8
        '    service: api', //                              9: unknown service
      ),
    );
    assert.deepEqual(err.problems.map(where), [
      '1:15 drainTimeout',
      '2:11 logLevel',
      '6:14 services.web.retries',
      '9:14 listeners[0].service',
    ]);
    assert.deepEqual(err.message.split('\n'), err.problems.map(formatProblem));
  });

  it('sorts problems found in later passes (strategies) into file order', async () => {
    // Strategies are checked after listeners, but the report stays in file order.
    const problems = await problemsIn(
      yaml(
        'services:', //                               1
        '  web:', //                                  2
        '    static: [127.0.0.1:9001]', //            3
        '    strategy: fastest', //                   4
        'listeners:', //                              5
        '  - bind: 127.0.0.1:8080', //                6
        '    service: nope', //                       7
      ),
    );
    assert.deepEqual(problems.map(where), ['4:15 services.web.strategy', '7:14 listeners[0].service']);
  });
});

describe('listeners', () => {
  it('refuses a listener naming a service that does not exist, listing the known ones', async () => {
    const problems = await problemsIn(withListeners('  - bind: 127.0.0.1:8080', '    service: wbe'));
    const p = problemAt(problems, 'listeners[0].service');
    assert.equal(where(p), '6:14 listeners[0].service');
    assert.match(p.message, /no service named "wbe"/);
    assert.match(p.message, /web/);
  });

  it('refuses a listener with no service', async () => {
    const problems = await problemsIn(withListeners('  - bind: 127.0.0.1:8080'));
    assert.deepEqual(problems.map(where), ['5:5 listeners[0].service']);
    assert.match(problems[0]!.message, /required/);
  });

  it('refuses two listeners on the same address, at the second bind', async () => {
    const problems = await problemsIn(
      withListeners(
        '  - name: a', //                   5
        '    bind: 127.0.0.1:8080', //      6
        '    service: web', //              7
        '  - name: b', //                   8
        '    bind: 127.0.0.1:8080', //      9
        '    service: web', //              10
      ),
    );
    assert.deepEqual(problems.map(where), ['9:11 listeners[1].bind']);
    assert.match(problems[0]!.message, /collides with listeners\[0\]/);
  });

  it('refuses 0.0.0.0 and 127.0.0.1 on the same port, in either order', async () => {
    for (const [first, second] of [
      ['0.0.0.0', '127.0.0.1'],
      ['127.0.0.1', '0.0.0.0'],
    ]) {
      const problems = await problemsIn(
        withListeners(
          '  - name: a',
          `    bind: ${first}:8080`,
          '    service: web',
          '  - name: b',
          `    bind: ${second}:8080`,
          '    service: web',
        ),
      );
      assert.deepEqual(problems.map(where), ['9:11 listeners[1].bind'], `${first} then ${second}`);
      assert.match(problems[0]!.message, new RegExp(`${second}:8080 collides with listeners\\[0\\] \\(${first}:8080\\)`));
    }
  });

  it('refuses the IPv6 wildcard [::] and 127.0.0.1 on the same port', async () => {
    const problems = await problemsIn(
      withListeners('  - name: a', '    bind: "[::]:8080"', '    service: web', '  - name: b', '    bind: 127.0.0.1:8080', '    service: web'),
    );
    assert.deepEqual(problems.map(where), ['9:11 listeners[1].bind']);
  });

  it('accepts listeners on different ports, and several on port 0 (any free port) when named', async () => {
    const config = await parseConfig(
      withListeners(
        '  - bind: 127.0.0.1:8080',
        '    service: web',
        '  - bind: 0.0.0.0:8081',
        '    service: web',
        '  - name: a',
        '    bind: 127.0.0.1:0',
        '    service: web',
        '  - name: b',
        '    bind: 127.0.0.1:0',
        '    service: web',
      ),
      '/nonexistent/drover.yaml',
    );
    assert.deepEqual(
      config.listeners.map((l) => `${l.name} ${l.bind.id}`),
      ['127.0.0.1:8080 127.0.0.1:8080', '0.0.0.0:8081 0.0.0.0:8081', 'a 127.0.0.1:0', 'b 127.0.0.1:0'],
    );
  });

  it('refuses two listeners with the same name', async () => {
    const problems = await problemsIn(
      withListeners('  - name: edge', '    bind: 127.0.0.1:8080', '    service: web', '  - name: edge', '    bind: 127.0.0.1:8081', '    service: web'),
    );
    assert.equal(problems.length, 1);
    assert.equal(problems[0]!.path, 'listeners[1].name');
    assert.equal(problems[0]!.line, 8);
    assert.match(problems[0]!.message, /"edge" is already used by listeners\[0\]/);
  });

  it('refuses an empty listeners list and a missing listeners section', async () => {
    const empty = await problemsIn(yaml('services:', '  web:', '    static: [127.0.0.1:9001]', 'listeners: []'));
    assert.deepEqual(empty.map(where), ['4:12 listeners']);
    const missing = await problemsIn(yaml('services:', '  web:', '    static: [127.0.0.1:9001]'));
    assert.deepEqual(missing.map((p) => p.path), ['listeners']);
    assert.match(missing[0]!.message, /required/);
  });
});

describe('addresses', () => {
  /** The problem for a single backend address written in a flow list on line 3. */
  async function backendProblem(address: string) {
    const problems = await problemsIn(withListeners('  - bind: 127.0.0.1:8080', '    service: web').replace('[127.0.0.1:9001]', `["${address}"]`));
    return problemAt(problems, 'services.web.static[0]');
  }

  it('refuses a port above 65535', async () => {
    const p = await backendProblem('127.0.0.1:70000');
    assert.equal(where(p), '3:14 services.web.static[0]');
    assert.match(p.message, /port 70000 is out of range/);
  });

  it('refuses port 0 for a backend', async () => {
    assert.match((await backendProblem('127.0.0.1:0')).message, /port 0 is out of range/);
  });

  it('refuses a port that is not a number', async () => {
    assert.match((await backendProblem('127.0.0.1:http')).message, /not an address of the form host:port/);
  });

  it('refuses an address without a port', async () => {
    for (const address of ['127.0.0.1', 'example.com', 'example.com:', '::1']) {
      assert.match((await backendProblem(address)).message, /not an address of the form host:port/, address);
    }
  });

  it('refuses an address without a host', async () => {
    assert.match((await backendProblem(':8080')).message, /not an address of the form host:port/);
  });

  it('refuses a malformed host name', async () => {
    for (const host of ['bad_host!', '-leading-dash.example', 'trailing-dash-.example', 'a..b']) {
      const p = await backendProblem(`${host}:80`);
      assert.match(p.message, /is not a valid IP address or host name/, host);
    }
  });

  it('refuses an IPv4 address in brackets and an IPv6 address without them', async () => {
    assert.match((await backendProblem('[127.0.0.1]:80')).message, /not a valid IP address/);
    assert.match((await backendProblem('fe80::1:80')).message, /not an address of the form host:port/);
  });

  it('refuses the same backend listed twice', async () => {
    const problems = await problemsIn(
      withListeners('  - bind: 127.0.0.1:8080', '    service: web').replace('[127.0.0.1:9001]', '[127.0.0.1:9001, "http://127.0.0.1:9001/"]'),
    );
    const p = problemAt(problems, 'services.web.static[1]');
    assert.match(p.message, /127\.0\.0\.1:9001 is already listed at services\.web\.static\[0\]/);
  });

  it('accepts IPv4, bracketed IPv6, host names and URLs with a scheme', async () => {
    const config = await parseConfig(
      withListeners('  - bind: 127.0.0.1:8080', '    service: web').replace(
        '[127.0.0.1:9001]',
        '[10.0.0.1:1, "[fe80::1]:65535", db-1.internal.example:5432, "tcp://10.0.0.2:80"]',
      ),
      '/nonexistent/drover.yaml',
    );
    assert.deepEqual(
      config.services.get('web')!.static.map((m) => [m.host, m.port]),
      [
        ['10.0.0.1', 1],
        ['fe80::1', 65535],
        ['db-1.internal.example', 5432],
        ['10.0.0.2', 80],
      ],
    );
  });

  it('refuses a bad listener bind address at the bind value', async () => {
    const cases: Array<[string, RegExp]> = [
      ['127.0.0.1:99999', /port 99999 is out of range/],
      ['127.0.0.1:123456', /not an address of the form host:port/],
      ['127.0.0.1:65536', /port 65536 is out of range/],
      ['"8080"', /not an address of the form host:port/],
      ['127.0.0.1', /not an address of the form host:port/],
      ['not_a_host:8080', /not a valid IP address or host name/],
    ];
    for (const [bind, message] of cases) {
      const problems = await problemsIn(withListeners('  - name: a', `    bind: ${bind}`, '    service: web'));
      const p = problemAt(problems, 'listeners[0].bind');
      assert.equal(where(p), '6:11 listeners[0].bind', bind);
      assert.match(p.message, message, bind);
    }
  });

  it('refuses impossible IPv4 addresses instead of taking them for host names', async () => {
    const problems = await problemsIn(withListeners('  - bind: 999.1.1.1:8080', '    service: web'));
    assert.match(problemAt(problems, 'listeners[0].bind').message, /"999.1.1.1" is not a valid IP address or host name/);
  });

  it('reports one problem per bad bind, without a made-up name clash', async () => {
    const problems = await problemsIn(withListeners('  - bind: "8080"', '    service: web', '  - bind: 127.0.0.1:99999', '    service: web'));
    assert.deepEqual(problems.map((p) => p.path), ['listeners[0].bind', 'listeners[1].bind']);
  });

  it('accepts several unnamed listeners on port 0', async () => {
    const config = await parseConfig(
      withListeners('  - bind: 127.0.0.1:0', '    service: web', '  - bind: 127.0.0.1:0', '    service: web'),
      '/nonexistent/drover.yaml',
    );
    assert.deepEqual(config.listeners.map((l) => l.name), ['listeners[0]', 'listeners[1]']);
  });

  it('accepts port 0 for a listener (any free port)', async () => {
    const config = await parseConfig(withListeners('  - bind: 127.0.0.1:0', '    service: web'), '/nonexistent/drover.yaml');
    assert.equal(config.listeners[0]!.bind.port, 0);
  });
});

describe('durations', () => {
  it('refuses bare numbers, saying a unit is needed', async () => {
    const problems = await problemsIn(
      yaml(
        'drainTimeout: 30', //                               1
        'services:', //                                      2
        '  web:', //                                         3
        '    static: [127.0.0.1:9001]', //                   4
        '    timeouts: { connect: 5000, idle: 300000 }', //  5
        'listeners:',
        '  - bind: 127.0.0.1:8080',
        '    service: web',
      ),
    );
    assert.deepEqual(problems.map(where), ['1:15 drainTimeout', '5:26 services.web.timeouts.connect', '5:38 services.web.timeouts.idle']);
    for (const p of problems) assert.match(p.message, /expected a duration like 500ms, 2s or 1m .*got number/);
  });

  it('refuses durations longer than a timer can wait, instead of firing them at once', async () => {
    const problems = await problemsIn(withService('    timeouts: { connect: 600h }'));
    assert.match(problemAt(problems, 'services.web.timeouts.connect').message, /at most 596h/);
  });

  it('refuses keys that are not strings, rather than renaming them', async () => {
    const problems = await problemsIn(yaml('services:', '  42:', '    static: [127.0.0.1:9001]', 'listeners:', '  - bind: 127.0.0.1:8080', '    service: web'));
    assert.match(problems.map((p) => p.message).join('\n'), /keys must be strings, got number 42/);
  });

  it('refuses a number written as a string, an unknown unit and a negative duration', async () => {
    for (const value of ['"30"', '1d', '-1s', '30 seconds', 'soon']) {
      const problems = await problemsIn(withService(`    timeouts: { connect: ${value} }`));
      const p = problemAt(problems, 'services.web.timeouts.connect');
      assert.equal(p.line, 4, value);
      assert.match(p.message, /expected a duration/, value);
    }
  });

  it('refuses a zero connect or idle timeout', async () => {
    const problems = await problemsIn(withService('    timeouts:', '      connect: 0s', '      idle: 0ms'));
    assert.deepEqual(problems.map(where), ['5:16 services.web.timeouts.connect', '6:13 services.web.timeouts.idle']);
    for (const p of problems) assert.match(p.message, /longer than 0/);
  });

  it('converts ms, s, m and h to milliseconds', async () => {
    const config = await parseConfig(
      yaml('drainTimeout: 1h', 'services:', '  web:', '    static: [127.0.0.1:9001]', '    timeouts: { connect: 250ms, idle: 2m }', 'listeners:', '  - bind: 127.0.0.1:8080', '    service: web'),
      '/nonexistent/drover.yaml',
    );
    assert.equal(config.drainTimeout, 3_600_000);
    assert.deepEqual(config.services.get('web')!.timeouts, { connect: 250, idle: 120_000, keepAlive: 4_000 });
    const s = await parseConfig(withService('    timeouts: { connect: 1.5s }').replace('services:', 'drainTimeout: 0s\nservices:'), '/x/drover.yaml');
    assert.equal(s.drainTimeout, 0);
    assert.equal(s.services.get('web')!.timeouts.connect, 1500);
  });
});

describe('strategies', () => {
  it('refuses an unknown strategy name, listing the built-in ones', async () => {
    const problems = await problemsIn(withService('    strategy: fastest'));
    assert.deepEqual(problems.map(where), ['4:15 services.web.strategy']);
    assert.match(problems[0]!.message, /unknown strategy "fastest"/);
    assert.match(problems[0]!.message, /round-robin/);
    assert.match(problems[0]!.message, /least-connections/);
  });

  it('refuses an unknown strategy name given as `name:`, at the name', async () => {
    const problems = await problemsIn(withService('    strategy:', '      name: fastest'));
    assert.deepEqual(problems.map(where), ['5:13 services.web.strategy.name']);
    assert.match(problems[0]!.message, /unknown strategy "fastest"/);
  });

  it('does not take inherited object properties for strategy names', async () => {
    const problems = await problemsIn(withService('    strategy: toString'));
    assert.match(problems[0]!.message, /unknown strategy "toString"/);
  });

  it('refuses an unknown strategy option, at the option key', async () => {
    const problems = await problemsIn(withService('    strategy:', '      name: round-robin', '      options:', '        speed: 2'));
    assert.deepEqual(problems.map(where), ['7:9 services.web.strategy.options.speed']);
    assert.match(problems[0]!.message, /unknown option/);
  });

  it('refuses a bad value for a known strategy option, at the option key', async () => {
    const problems = await problemsIn(withService('    strategy:', '      name: agent-load', '      options:', '        maxAge: 5'));
    assert.deepEqual(problems.map(where), ['7:9 services.web.strategy.options.maxAge']);
    assert.match(problems[0]!.message, /expected a duration/);
  });

  it('accepts valid options for a built-in strategy', async () => {
    const config = await parseConfig(withService('    strategy: { name: agent-load, options: { maxAge: 10s } }'), '/x/drover.yaml');
    const strategy = config.services.get('web')!.strategy;
    assert.equal(strategy.label, 'agent-load');
    assert.deepEqual(strategy.options, { maxAge: '10s' });
  });

  it('refuses a strategy with both `name` and `module`, or neither', async () => {
    for (const value of ['{ name: round-robin, module: ./x.js }', '{ options: {} }']) {
      const problems = await problemsIn(withService(`    strategy: ${value}`));
      assert.deepEqual(problems.map(where), ['4:15 services.web.strategy'], value);
      assert.match(problems[0]!.message, /exactly one of `name`/, value);
    }
  });

  it('refuses strategy options that are not a mapping', async () => {
    const problems = await problemsIn(withService('    strategy: { name: round-robin, options: [1, 2] }'));
    assert.deepEqual(problems.map(where), ['4:45 services.web.strategy.options']);
  });
});

describe('other value checks', () => {
  it('refuses a scalar where a list or mapping is expected', async () => {
    const problems = await problemsIn(
      yaml('services:', '  web:', '    static: 127.0.0.1:9001', '    timeouts: 5s', 'listeners:', '  - bind: 127.0.0.1:8080', '    service: web'),
    );
    assert.deepEqual(problems.map(where), ['3:13 services.web.static', '4:15 services.web.timeouts']);
    assert.match(problems[0]!.message, /expected a list/);
    assert.match(problems[1]!.message, /expected a mapping/);
  });

  it('refuses out-of-range numbers and unknown enum values on a listener', async () => {
    const problems = await problemsIn(
      withListeners('  - bind: 127.0.0.1:8080', '    service: web', '    mode: udp', '    proxyProtocol: v3', '    maxConnections: 0'),
    );
    assert.deepEqual(problems.map(where), ['7:11 listeners[0].mode', '8:20 listeners[0].proxyProtocol', '9:21 listeners[0].maxConnections']);
  });

  it('refuses a backend weight outside 0-1000 and a service name with spaces', async () => {
    const problems = await problemsIn(
      yaml(
        'services:',
        '  "my web":',
        '    static:',
        '      - { address: 127.0.0.1:9001, weight: 1001 }',
        'listeners:',
        '  - bind: 127.0.0.1:8080',
        '    service: my web',
      ),
    );
    assert.deepEqual(problems.map(where), ['2:3 services.my web', '4:44 services.my web.static[0].weight']);
  });
});

describe('YAML syntax', () => {
  it('reports a syntax error with its line and column as DROVER_CONFIG_INVALID', async () => {
    const problems = await problemsIn(yaml('services:', '\tweb:', '    static: [127.0.0.1:9001]'));
    assert.equal(problems.length, 1);
    assert.deepEqual([problems[0]!.line, problems[0]!.column, problems[0]!.path], [2, 1, '']);
    assert.match(problems[0]!.message, /tab/i);
  });

  it('reports an unclosed bracket on a single message line', async () => {
    const err = await invalid(yaml('services:', '  web:', '    static: [127.0.0.1:9001', 'listeners:', '  - bind: 127.0.0.1:8080', '    service: web'));
    assert.ok(err.problems.length >= 1);
    for (const p of err.problems) {
      assert.ok(p.line >= 3, `expected the error at or after line 3, got ${p.line}`);
      assert.doesNotMatch(p.message, /\n/);
    }
    assert.match(err.message, /^drover\.yaml:\d+:\d+: \S/);
  });

  it('refuses a duplicate key inside a service, at the second occurrence', async () => {
    const problems = await problemsIn(withService('    retries: 1', '    retries: 2'));
    assert.deepEqual(
      problems.map((p) => [p.line, p.column]),
      [[5, 5]],
    );
    assert.match(problems[0]!.message, /unique/i);
  });

  it('refuses a duplicate top-level section instead of keeping the last one', async () => {
    const problems = await problemsIn(
      yaml('services:', '  web:', '    static: [127.0.0.1:9001]', 'listeners:', '  - bind: 127.0.0.1:8080', '    service: web', 'services:', '  api:', '    static: [127.0.0.1:9002]'),
    );
    assert.deepEqual(
      problems.map((p) => [p.line, p.column]),
      [[7, 1]],
    );
  });
});

describe('empty and unusable files', () => {
  it('refuses an empty file, a comment-only file and a lone document marker', async () => {
    for (const text of ['', '\n\n', '# nothing yet\n', '---\n', '~\n']) {
      const problems = await problemsIn(text);
      assert.deepEqual(problems.map(where), ['1:1 '], JSON.stringify(text));
      assert.match(problems[0]!.message, /empty/, JSON.stringify(text));
    }
  });

  it('refuses a file that is a single scalar or a list', async () => {
    for (const text of ['hello\n', '- 1\n- 2\n']) {
      const problems = await problemsIn(text);
      assert.equal(problems.length, 1);
      assert.match(problems[0]!.message, /expected a mapping/);
    }
  });

  it('reports a missing file as DROVER_CONFIG_UNREADABLE, naming the file', async () => {
    const tmp = tempDir();
    try {
      const file = join(tmp.dir, 'missing.yaml');
      const err = await loadConfig(file).then(
        () => assert.fail('loaded a missing file'),
        (e: unknown) => e,
      );
      assert.ok(err instanceof ConfigUnreadableError);
      assert.ok(!(err instanceof ConfigInvalidError));
      assert.equal(err.code, 'DROVER_CONFIG_UNREADABLE');
      assert.ok(err.message.startsWith(`${file}: cannot read config`), err.message);
    } finally {
      tmp.remove();
    }
  });

  it('reports a folder given as the config file as DROVER_CONFIG_UNREADABLE', async () => {
    const tmp = tempDir();
    try {
      const folder = join(tmp.dir, 'drover.yaml');
      mkdirSync(folder);
      await assert.rejects(loadConfig(folder), { code: 'DROVER_CONFIG_UNREADABLE' });
    } finally {
      tmp.remove();
    }
  });
});
