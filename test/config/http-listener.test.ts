import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseConfig } from '../../src/config/load.js';
import type { HttpListenerConfig } from '../../src/config/schema.js';
import { problemAt, problemsIn, where, yaml } from './helpers.js';

const head = ['services:', '  web:', '    static: [127.0.0.1:9001]', '  api:', '    static: [127.0.0.1:9002]', 'listeners:'];

async function httpListener(...lines: string[]): Promise<HttpListenerConfig> {
  const config = await parseConfig(yaml(...head, ...lines), '/nonexistent/drover.yaml');
  const l = config.listeners[0]!;
  assert.equal(l.mode, 'http');
  return l as HttpListenerConfig;
}

describe('http listeners', () => {
  it('reads routes with every kind of match, normalising case', async () => {
    const l = await httpListener(
      '  - mode: http',
      '    bind: 127.0.0.1:8080',
      '    routes:',
      '      - match: { host: API.example.com, pathPrefix: /v1, method: [get, HEAD], headers: { X-Canary: "1" } }',
      '        service: api',
      '      - match: { host: "*.example.com", method: POST }',
      '        service: web',
      '      - service: web',
    );
    assert.deepEqual(l.routes, [
      { match: { host: 'api.example.com', pathPrefix: '/v1', methods: ['GET', 'HEAD'], headers: { 'x-canary': '1' } }, service: 'api' },
      { match: { host: '*.example.com', methods: ['POST'] }, service: 'web' },
      { match: {}, service: 'web' },
    ]);
  });

  it('gives http listeners the native engine, their default timeouts and no trusted proxies', async () => {
    const l = await httpListener('  - { mode: http, bind: 127.0.0.1:8080, service: web }');
    assert.equal(l.engine, 'native');
    assert.deepEqual(l.timeouts, { response: 30_000, idle: 60_000, headers: 10_000, request: 60_000 });
    assert.deepEqual(l.trustForwardedFor, []);
    assert.deepEqual(l.routes, [{ match: {}, service: 'web' }]);
  });

  it('takes service: as the default route after the listed routes', async () => {
    const l = await httpListener('  - mode: http', '    bind: 127.0.0.1:8080', '    routes: [ { match: { pathPrefix: /api }, service: api } ]', '    service: web');
    assert.deepEqual(l.routes.map((r) => r.service), ['api', 'web']);
  });

  it('reads timeouts and trusted proxies', async () => {
    const l = await httpListener(
      '  - mode: http',
      '    bind: 127.0.0.1:8080',
      '    service: web',
      '    timeouts: { connect: 1s, response: 2s, idle: 3s, headers: 4s, request: 5s }',
      '    trustForwardedFor: [10.0.0.0/8, 127.0.0.1, "::1", "fd00::/8"]',
    );
    assert.deepEqual(l.timeouts, { connect: 1000, response: 2000, idle: 3000, headers: 4000, request: 5000 });
    assert.deepEqual(l.trustForwardedFor, ['10.0.0.0/8', '127.0.0.1', '::1', 'fd00::/8']);
  });

  it('reports bad routes, methods, headers, CIDRs and tcp-only keys at their place', async () => {
    const problems = await problemsIn(
      yaml(
        ...head, //                                                      1-6
        '  - mode: http', //                                             7
        '    bind: 127.0.0.1:8080', //                                   8
        '    proxyProtocol: v1', //                                      9
        '    routes:', //                                                10
        '      - match: { pathPrefix: api, method: [GET, "BAD METHOD"] }', // 11
        '        service: web', //                                       12
        '      - match: { host: "bad host!" , colour: red }', //         13
        '        service: nowhere', //                                   14
        '      - match: { headers: { "bad name": x } }', //              15
        '    trustForwardedFor: [10.0.0.0/33, example.com]', //          16
      ),
    );
    assert.deepEqual(problems.map(where), [
      '9:5 listeners[0].proxyProtocol',
      '11:30 listeners[0].routes[0].match.pathPrefix',
      '11:49 listeners[0].routes[0].match.method[1]',
      '13:24 listeners[0].routes[1].match.host',
      '13:38 listeners[0].routes[1].match.colour',
      '14:18 listeners[0].routes[1].service',
      '15:9 listeners[0].routes[2].service',
      '15:29 listeners[0].routes[2].match.headers.bad name',
      '16:25 listeners[0].trustForwardedFor[0]',
      '16:38 listeners[0].trustForwardedFor[1]',
    ]);
  });

  it('reads engine: http-proxy and engine: native', async () => {
    assert.equal((await httpListener('  - { mode: http, bind: 127.0.0.1:8080, service: web, engine: http-proxy }')).engine, 'http-proxy');
    assert.equal((await httpListener('  - { mode: http, bind: 127.0.0.1:8080, service: web, engine: native }')).engine, 'native');
  });

  it('keeps the other timeouts at their defaults when only request is given', async () => {
    const l = await httpListener('  - mode: http', '    bind: 127.0.0.1:8080', '    service: web', '    timeouts: { request: 2m }');
    assert.deepEqual(l.timeouts, { response: 30_000, idle: 60_000, headers: 10_000, request: 120_000 });
  });

  it('cuts the default headers timeout to a shorter request timeout', async () => {
    const l = await httpListener('  - mode: http', '    bind: 127.0.0.1:8080', '    service: web', '    timeouts: { request: 3s }');
    assert.deepEqual(l.timeouts, { response: 30_000, idle: 60_000, headers: 3_000, request: 3_000 });
  });

  it('refuses an unknown engine at its value, naming the engines', async () => {
    const problems = await problemsIn(
      yaml(
        ...head, //                                    1-6
        '  - mode: http', //                           7
        '    bind: 127.0.0.1:8080', //                 8
        '    service: web', //                         9
        '    engine: undici', //                       10
      ),
    );
    assert.deepEqual(problems, [
      { file: 'drover.yaml', line: 10, column: 13, path: 'listeners[0].engine', message: 'expected one of native, http-proxy, got "undici"' },
    ]);
  });

  it('refuses engine on a tcp listener, at the key', async () => {
    for (const mode of ['    mode: tcp', '    # mode: tcp by default']) {
      const problems = await problemsIn(
        yaml(
          ...head, //                                  1-6
          '  - bind: 127.0.0.1:8080', //               7
          '    service: web', //                       8
          mode, //                                     9
          '    engine: native', //                     10
        ),
      );
      assert.deepEqual(problems.map(where), ['10:5 listeners[0].engine'], mode);
      assert.equal(problems[0]!.message, 'only for mode: http (a tcp listener forwards bytes, not requests)');
    }
  });

  it('suggests engine for a misspelt key on an http listener', async () => {
    const problems = await problemsIn(yaml(...head, '  - { mode: http, bind: 127.0.0.1:8080, service: web, engin: native }'));
    assert.deepEqual(problems.map(where), ['7:55 listeners[0].engin']);
    assert.match(problems[0]!.message, /did you mean "engine"\?/);
  });

  it('refuses a request timeout of 0, a bare number, or shorter than the headers timeout', async () => {
    const problems = await problemsIn(
      yaml(
        ...head, //                                                        1-6
        '  - { mode: http, bind: 127.0.0.1:8080, service: web, timeouts: { request: 0s } }', //  7
        '  - { mode: http, bind: 127.0.0.1:8081, service: web, timeouts: { request: 60 } }', //  8
        '  - { mode: http, bind: 127.0.0.1:8082, service: web, timeouts: { request: 5s, headers: 10s } }', // 9
      ),
    );
    assert.deepEqual(problems.map(where), [
      '7:76 listeners[0].timeouts.request',
      '8:76 listeners[1].timeouts.request',
      '9:89 listeners[2].timeouts.headers',
    ]);
    assert.equal(problemAt(problems, 'listeners[0].timeouts.request').message, 'must be longer than 0');
    assert.equal(problemAt(problems, 'listeners[1].timeouts.request').message, 'expected a duration like 500ms, 2s or 1m (at most 596h), got number 60');
    assert.equal(problemAt(problems, 'listeners[2].timeouts.headers').message, 'must not be longer than request (5000ms)');
  });

  it('requires routes or a service on an http listener', async () => {
    const problems = await problemsIn(yaml(...head, '  - { mode: http, bind: 127.0.0.1:8080 }'));
    assert.deepEqual(problems.map((p) => p.path), ['listeners[0].routes']);
  });
});
