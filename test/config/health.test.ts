import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseConfig } from '../../src/config/load.js';
import { problemAt, problemsIn, where, yaml } from './helpers.js';

/** A valid config with one service `web` on two static members and `extra` lines (from line 4) in the service. */
function withService(...extra: string[]): string {
  return yaml(
    'services:', //                                      1
    '  web:', //                                         2
    '    static: [127.0.0.1:9001, 127.0.0.1:9002]', //    3
    ...extra, //                                         4..
    'listeners:',
    '  - bind: 127.0.0.1:8080',
    '    service: web',
  );
}

async function web(...extra: string[]) {
  return (await parseConfig(withService(...extra), '/x/drover.yaml')).services.get('web')!;
}

describe('health, load and ramp keys', () => {
  it('reads a full http check, filling unset keys with their defaults', async () => {
    const s = await web('    healthCheck: { type: http, path: /healthz, expect: "200-299,304", host: web.internal, rise: 1 }');
    assert.deepEqual(s.healthCheck, {
      type: 'http',
      path: '/healthz',
      expect: [
        [200, 299],
        [304, 304],
      ],
      host: 'web.internal',
      interval: 2000,
      timeout: 1000,
      rise: 1,
      fall: 3,
      startUnhealthy: false,
      shared: false,
    });
  });

  it('caps the default check timeout at a shorter interval', async () => {
    const s = await web('    healthCheck: { interval: 500ms }');
    assert.equal(s.healthCheck!.type, 'tcp');
    assert.equal(s.healthCheck!.timeout, 500);
  });

  it('refuses a timeout longer than the interval, http keys on a tcp check, and a bad status range', async () => {
    const problems = await problemsIn(withService('    healthCheck: { type: tcp, interval: 1s, timeout: 2s, path: /x }', '    agent: { port: 9777, expect: 200 }'));
    assert.match(problemAt(problems, 'services.web.healthCheck.timeout').message, /must not be longer than interval/);
    assert.match(problemAt(problems, 'services.web.healthCheck.path').message, /only http checks/);
    assert.equal(where(problemAt(problems, 'services.web.agent.expect')), '5:26 services.web.agent.expect');
    const ranges = await problemsIn(withService('    healthCheck: { type: http, expect: 399-200 }'));
    assert.match(problemAt(ranges, 'services.web.healthCheck.expect').message, /200-399/);
  });

  it('reads percentages as 50% or 50, and refuses anything above 100%', async () => {
    assert.equal((await web('    panicThreshold: 50%')).panicThreshold, 50);
    assert.equal((await web('    panicThreshold: 25')).panicThreshold, 25);
    assert.equal((await web('    outlier: { maxEjectedPercent: 10% }')).outlier!.maxEjectedPercent, 10);
    const problems = await problemsIn(withService('    panicThreshold: 150%'));
    assert.equal(where(problemAt(problems, 'services.web.panicThreshold')), '4:21 services.web.panicThreshold');
  });

  it('reads outlier ejection with defaults, and refuses a maxEjection under baseEjection', async () => {
    assert.deepEqual((await web('    outlier: { consecutiveFailures: 2 }')).outlier, {
      consecutiveFailures: 2,
      baseEjection: 30_000,
      maxEjection: 300_000,
      maxEjectedPercent: 50,
    });
    assert.equal((await web('    outlier: { baseEjection: 10m }')).outlier!.maxEjection, 600_000);
    const problems = await problemsIn(withService('    outlier: { baseEjection: 1m, maxEjection: 30s }'));
    assert.match(problemAt(problems, 'services.web.outlier.maxEjection').message, /baseEjection/);
  });

  it('reads slowStart as a duration', async () => {
    assert.equal((await web('    slowStart: 30s')).slowStart, 30_000);
    await problemsIn(withService('    slowStart: 30'));
  });

  it('needs an agent port from the service or from every static member', async () => {
    const problems = await problemsIn(withService('    agent: { interval: 1s }'));
    assert.match(problemAt(problems, 'services.web.agent.port').message, /agentPort/);
    const config = await parseConfig(
      yaml(
        'services:',
        '  web:',
        '    static: [{ address: 127.0.0.1:9001, agentPort: 9777 }, { address: 127.0.0.1:9002, agentPort: 9778 }]',
        '    agent: { send: "ping" }',
        'listeners:',
        '  - bind: 127.0.0.1:8080',
        '    service: web',
      ),
      '/x/drover.yaml',
    );
    const s = config.services.get('web')!;
    assert.deepEqual(s.static.map((m) => m.agentPort), [9777, 9778]);
    assert.deepEqual(s.agent, { interval: 2000, timeout: 1000, send: 'ping' });
  });

  it('needs the zookeeper block for shared checks', async () => {
    const problems = await problemsIn(withService('    healthCheck: { shared: true }'));
    assert.match(problemAt(problems, 'services.web.healthCheck.shared').message, /zookeeper/);
  });
});
