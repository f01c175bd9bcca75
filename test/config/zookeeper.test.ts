import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseConfig } from '../../src/config/load.js';
import { problemsIn, where, yaml } from './helpers.js';

const listeners = ['listeners:', '  - bind: 127.0.0.1:8080', '    service: web'];

describe('zookeeper config', () => {
  it('reads the zookeeper block and a service path, shorthand or full', async () => {
    const config = await parseConfig(
      yaml(
        'zookeeper:',
        '  connect: 10.0.0.1:2181,10.0.0.2:2181/chroot/x',
        '  sessionTimeout: 5s',
        '  auth: [ { scheme: digest, credentials: "drover:secret" } ]',
        'services:',
        '  web: { zookeeper: /services/web }',
        '  api: { zookeeper: { path: /services/api, format: finagle, endpoint: http } }',
        ...listeners,
      ),
      '/x/drover.yaml',
    );
    assert.deepEqual(config.zookeeper, { connect: '10.0.0.1:2181,10.0.0.2:2181/chroot/x', sessionTimeout: 5000, auth: [{ scheme: 'digest', credentials: 'drover:secret' }] });
    assert.deepEqual(config.services.get('web')!.zookeeper, { path: '/services/web', format: 'auto' });
    assert.deepEqual(config.services.get('api')!.zookeeper, { path: '/services/api', format: 'finagle', endpoint: 'http' });
    assert.deepEqual(config.services.get('web')!.static, []);
  });

  it('defaults the session timeout to 10s', async () => {
    const config = await parseConfig(yaml('zookeeper: { connect: 127.0.0.1:2181 }', 'services:', '  web: { zookeeper: /s }', ...listeners), '/x/d.yaml');
    assert.equal(config.zookeeper!.sessionTimeout, 10_000);
  });

  it('reports bad connect strings, chroots, paths, formats, and static with zookeeper', async () => {
    const problems = await problemsIn(
      yaml(
        'zookeeper:', //                                    1
        '  connect: "10.0.0.1:99999,nohost/chroot/"', //    2
        '  sessionTimeout: 100ms', //                       3
        'services:', //                                     4
        '  web:', //                                        5
        '    zookeeper: services/web', //                   6
        '  api:', //                                        7
        '    zookeeper: { path: /a//b, format: xml }', //   8
        '  both:', //                                       9
        '    static: [127.0.0.1:1]', //                     10
        '    zookeeper: /both', //                          11
        ...listeners,
      ),
    );
    assert.deepEqual(problems.map(where), [
      '2:12 zookeeper.connect',
      '2:12 zookeeper.connect',
      '2:12 zookeeper.connect',
      '3:19 zookeeper.sessionTimeout',
      '6:16 services.web.zookeeper',
      '8:24 services.api.zookeeper.path',
      '8:39 services.api.zookeeper.format',
      '11:5 services.both.zookeeper',
    ]);
  });

  it('requires the top-level block when a service uses ZooKeeper', async () => {
    const problems = await problemsIn(yaml('services:', '  web: { zookeeper: /services/web }', ...listeners));
    assert.deepEqual(problems.map((p) => p.path), ['services.web.zookeeper']);
    assert.match(problems[0]!.message, /top-level `zookeeper:`/);
  });
});
