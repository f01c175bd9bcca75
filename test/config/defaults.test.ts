import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { loadConfig, parseConfig } from '../../src/config/load.js';
import { DEFAULTS, type DroverConfig, type ListenerConfig, type TcpListenerConfig } from '../../src/config/schema.js';
import { strategies } from '../../strategies/index.js';
import { repoRoot, yaml } from './helpers.js';

const MINIMAL = yaml(
  'services:',
  '  web:',
  '    static: [127.0.0.1:9001, { address: 127.0.0.1:9002 }]',
  'listeners:',
  '  - bind: 127.0.0.1:8080',
  '    service: web',
);

/** The listeners of a config (or a list of them) that must all be TCP listeners. */
function tcpListeners(config: DroverConfig | readonly ListenerConfig[]): TcpListenerConfig[] {
  const list = 'listeners' in config ? config.listeners : config;
  for (const l of list) assert.equal(l.mode, 'tcp');
  return list as TcpListenerConfig[];
}

describe('defaults', () => {
  it('gives a minimal config every documented default', async () => {
    const config = await parseConfig(MINIMAL, '/srv/drover/drover.yaml');
    const web = config.services.get('web');
    assert.ok(web);
    assert.equal(web.strategy.factory, strategies['round-robin']);
    assert.deepEqual(
      {
        ...config,
        services: [...config.services].map(([name, s]) => [name, { ...s, strategy: { ...s.strategy, factory: '(checked above)' } }]),
      },
      {
        file: '/srv/drover/drover.yaml',
        drainTimeout: 30_000,
        logLevel: 'info',
        services: [
          [
            'web',
            {
              name: 'web',
              static: [
                { host: '127.0.0.1', port: 9001, weight: 1 },
                { host: '127.0.0.1', port: 9002, weight: 1 },
              ],
              strategy: { label: 'round-robin', factory: '(checked above)', options: {} },
              retries: 2,
              timeouts: { connect: 5_000, idle: 300_000, keepAlive: 4_000 },
              idempotentMethods: ['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE'],
              maxSockets: 256,
              queue: { size: 1000, timeout: 5_000 },
              slowStart: 0,
              panicThreshold: 0,
            },
          ],
        ],
        listeners: [
          {
            name: '127.0.0.1:8080',
            mode: 'tcp',
            bind: { host: '127.0.0.1', port: 8080, id: '127.0.0.1:8080' },
            service: 'web',
            proxyProtocol: 'off',
            maxConnections: 10_000,
          },
        ],
      },
    );
  });

  it('documents the same defaults in DEFAULTS as the loader applies', () => {
    assert.deepEqual(DEFAULTS, {
      drainTimeout: 30_000,
      admin: { listen: { host: '127.0.0.1', port: 9900, id: '127.0.0.1:9900' } },
      zookeeper: { sessionTimeout: 10_000 },
      logLevel: 'info',
      service: {
        strategy: 'round-robin',
        retries: 2,
        timeouts: { connect: 5_000, idle: 300_000, keepAlive: 4_000 },
        idempotentMethods: ['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE'],
        maxSockets: 256,
        queue: { size: 1000, timeout: 5_000 },
        slowStart: 0,
        panicThreshold: 0,
        healthCheck: {
          type: 'tcp',
          path: '/',
          expect: [[200, 399]],
          interval: 2_000,
          timeout: 1_000,
          rise: 2,
          fall: 3,
          startUnhealthy: false,
          shared: false,
        },
        outlier: { consecutiveFailures: 5, baseEjection: 30_000, maxEjection: 300_000, maxEjectedPercent: 50 },
        agent: { interval: 2_000, timeout: 1_000, send: '' },
      },
      member: { weight: 1 },
      listener: {
        proxyProtocol: 'off',
        maxConnections: 10_000,
        http: { engine: 'native', timeouts: { response: 30_000, idle: 60_000, headers: 10_000, request: 60_000 } },
      },
    });
  });

  it('names a listener after its bind address (brackets for IPv6), or its place in the list on port 0', async () => {
    const config = await parseConfig(
      yaml('services:', '  web:', '    static: [127.0.0.1:9001]', 'listeners:', '  - bind: "[::1]:8080"', '    service: web', '  - bind: 0.0.0.0:0', '    service: web'),
      '/x/drover.yaml',
    );
    assert.deepEqual(
      tcpListeners(config).map((l) => l.name),
      ['[::1]:8080', 'listeners[1]'],
    );
  });

  it('keeps explicit values instead of defaults', async () => {
    const config = await parseConfig(
      yaml(
        'drainTimeout: 5s',
        'logLevel: debug',
        'services:',
        '  web:',
        '    static: [{ address: 127.0.0.1:9001, weight: 0 }]',
        '    strategy: ip-hash',
        '    retries: 0',
        '    timeouts: { connect: 1s }',
        'listeners:',
        '  - name: front',
        '    bind: 127.0.0.1:8080',
        '    service: web',
        '    proxyProtocol: v2',
        '    maxConnections: 5',
      ),
      '/x/drover.yaml',
    );
    const web = config.services.get('web')!;
    assert.equal(config.drainTimeout, 5000);
    assert.equal(config.logLevel, 'debug');
    assert.equal(web.static[0]!.weight, 0);
    assert.equal(web.strategy.label, 'ip-hash');
    assert.equal(web.retries, 0);
    // Only connect was given: idle keeps its default.
    assert.deepEqual(web.timeouts, { connect: 1000, idle: 300_000, keepAlive: 4_000 });
    assert.deepEqual(
      [tcpListeners(config)[0]!.name, tcpListeners(config)[0]!.proxyProtocol, tcpListeners(config)[0]!.maxConnections],
      ['front', 'v2', 5],
    );
  });

  it('reads proxyProtocol: false (a YAML 1.1 habit for off) as off', async () => {
    const config = await parseConfig(
      yaml('services:', '  web:', '    static: [127.0.0.1:9001]', 'listeners:', '  - bind: 127.0.0.1:8080', '    service: web', '    proxyProtocol: false'),
      '/x/drover.yaml',
    );
    assert.equal(tcpListeners(config)[0]!.proxyProtocol, 'off');
  });
});

describe('reference configs', () => {
  it('loads config/minimal.yaml', async () => {
    const file = join(repoRoot, 'config', 'minimal.yaml');
    const config = await loadConfig(file);
    assert.equal(config.file, file);
    assert.deepEqual([...config.services.keys()], ['web']);
    assert.deepEqual(
      tcpListeners(config).map((l) => [l.name, l.bind.id, l.service]),
      [['127.0.0.1:8080', '127.0.0.1:8080', 'web']],
    );
  });

  it('loads config/full.yaml with every key it sets', async () => {
    const config = await loadConfig(join(repoRoot, 'config', 'full.yaml'));
    assert.equal(config.drainTimeout, 30_000);
    assert.equal(config.logLevel, 'info');
    assert.deepEqual([...config.services.keys()], ['web', 'db']);

    const web = config.services.get('web')!;
    assert.deepEqual(web.static, [
      { host: '127.0.0.1', port: 9001, weight: 1 },
      { host: '127.0.0.1', port: 9002, weight: 3, zone: 'eu-west-1a', meta: { rack: 'r12' } },
    ]);
    assert.equal(web.strategy.label, 'weighted-round-robin');
    assert.equal(web.strategy.factory, strategies['weighted-round-robin']);
    assert.equal(web.retries, 2);
    assert.deepEqual(web.timeouts, { connect: 5_000, idle: 300_000, keepAlive: 4_000 });

    const db = config.services.get('db')!;
    assert.deepEqual(
      db.static.map((m) => `${m.host}:${m.port}`),
      ['127.0.0.1:5432', '127.0.0.1:5433'],
    );
    assert.equal(db.strategy.label, 'least-connections');

    const [pg, tcpWeb, publicHttp] = config.listeners;
    assert.deepEqual(
      [pg, tcpWeb].map((l) => l!.mode === 'tcp' && { name: l.name, bind: l.bind.id, service: l.service, proxyProtocol: l.proxyProtocol, maxConnections: l.maxConnections }),
      [
        { name: 'pg', bind: '127.0.0.1:6432', service: 'db', proxyProtocol: 'off', maxConnections: 10_000 },
        { name: 'web', bind: '127.0.0.1:8080', service: 'web', proxyProtocol: 'off', maxConnections: 10_000 },
      ],
    );
    assert.equal(publicHttp!.mode, 'http');
    assert.deepEqual(publicHttp.mode === 'http' && publicHttp.routes.map((r) => r.service), ['db', 'web', 'web']);
    assert.equal(config.listeners.length, 3);
  });

  it('sets every key in config/full.yaml that is not marked "example" to its default', async () => {
    // full.yaml promises: "Every key Drover reads, set to its default unless marked example".
    const config = await loadConfig(join(repoRoot, 'config', 'full.yaml'));
    const web = config.services.get('web')!;
    assert.equal(config.drainTimeout, DEFAULTS.drainTimeout);
    assert.equal(config.logLevel, DEFAULTS.logLevel);
    assert.equal(web.retries, DEFAULTS.service.retries);
    assert.deepEqual(web.timeouts, DEFAULTS.service.timeouts);
    assert.equal(tcpListeners(config.listeners.slice(0, 1))[0]!.proxyProtocol, DEFAULTS.listener.proxyProtocol);
    assert.equal(config.listeners[0]!.maxConnections, DEFAULTS.listener.maxConnections);
    const http = config.listeners[2]!;
    assert.ok(http.mode === 'http');
    assert.equal(http.engine, DEFAULTS.listener.http.engine);
    assert.deepEqual(http.timeouts, DEFAULTS.listener.http.timeouts);
    assert.deepEqual(http.trustForwardedFor, []);
    assert.deepEqual(web.idempotentMethods, DEFAULTS.service.idempotentMethods);
    assert.equal(web.maxSockets, DEFAULTS.service.maxSockets);
    assert.deepEqual(web.queue, DEFAULTS.service.queue);
    assert.equal(web.slowStart, DEFAULTS.service.slowStart);
    assert.equal(web.panicThreshold, DEFAULTS.service.panicThreshold);
    // The check blocks are examples (giving one turns it on), but every key in them is a default.
    const { host, ...healthCheck } = web.healthCheck!;
    assert.equal(host, 'web.internal');
    assert.deepEqual(healthCheck, { ...DEFAULTS.service.healthCheck, type: 'http', path: '/healthz' });
    assert.deepEqual(web.outlier, DEFAULTS.service.outlier);
    assert.deepEqual(web.agent, { ...DEFAULTS.service.agent, port: 9777 });
  });
});
