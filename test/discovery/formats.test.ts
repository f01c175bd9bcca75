import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  MemberFormatError,
  parseMember,
  ZNODE_FORMATS,
  type RegistryMember,
  type ZnodeFormat,
} from '../../src/discovery/formats.js';

const text = (s: string): Buffer => Buffer.from(s, 'utf8');
const json = (v: unknown): Buffer => Buffer.from(JSON.stringify(v), 'utf8');

function read(data: Buffer | null, format: ZnodeFormat = 'auto', endpoint?: string): RegistryMember | null {
  return parseMember(data, endpoint === undefined ? { format } : { format, endpoint });
}

/** Asserts that reading fails with a MemberFormatError (and nothing else) whose message matches. */
function assertUnreadable(data: Buffer | null, format: ZnodeFormat, message: RegExp, endpoint?: string): MemberFormatError {
  let caught: unknown;
  try {
    read(data, format, endpoint);
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof MemberFormatError, `expected a MemberFormatError, got ${caught instanceof Error ? caught.stack : String(caught)}`);
  assert.equal(caught.code, 'DROVER_MEMBER_INVALID');
  assert.match(caught.message, message);
  return caught;
}

/** What every returned member must look like, whatever the input. */
function assertWellFormed(m: RegistryMember): void {
  assert.equal(typeof m.host, 'string');
  assert.ok(m.host.length > 0);
  assert.ok(Number.isInteger(m.port) && m.port >= 1 && m.port <= 65535, `port ${m.port}`);
  assert.ok(Number.isInteger(m.weight) && m.weight >= 0 && m.weight <= 1000, `weight ${m.weight}`);
  if (m.zone !== undefined) assert.equal(typeof m.zone, 'string');
  if (m.meta !== undefined) {
    assert.equal(Object.getPrototypeOf(m.meta), Object.prototype);
    for (const v of Object.values(m.meta)) assert.equal(typeof v, 'string');
  }
  if (m.drain !== undefined) assert.equal(m.drain, true);
  if (m.maxConnections !== undefined) {
    assert.ok(Number.isInteger(m.maxConnections) && m.maxConnections >= 1 && m.maxConnections <= 1_000_000, `maxConnections ${m.maxConnections}`);
  }
}

// Written the way Spring Cloud Zookeeper's Curator registration writes it (Jackson, payload with @class).
const CURATOR = {
  name: 'orders',
  id: '3f1c2a9e-8d4b-4c55-9a51-2f0e6b7d1c43',
  address: '10.1.4.17',
  port: 8080,
  sslPort: null,
  payload: {
    '@class': 'org.springframework.cloud.zookeeper.discovery.ZookeeperInstance',
    id: 'orders',
    name: 'orders',
    metadata: { instance_status: 'UP' },
  },
  registrationTimeUTC: 1717171717171,
  serviceType: 'DYNAMIC',
  uriSpec: {
    parts: [
      { value: 'scheme', variable: true },
      { value: '://', variable: false },
      { value: 'address', variable: true },
      { value: ':', variable: false },
      { value: 'port', variable: true },
    ],
  },
  enabled: true,
};

// An Aurora-launched Finagle server: service endpoint plus named extra ports.
const FINAGLE = {
  serviceEndpoint: { host: '10.2.0.31', port: 31781 },
  additionalEndpoints: {
    aurora: { host: '10.2.0.31', port: 31781 },
    http: { host: '10.2.0.31', port: 31782 },
    health: { host: '10.2.0.31', port: 31783 },
  },
  status: 'ALIVE',
  shard: 3,
};

// As Nerve's ZooKeeper reporter writes it: weight null when unset, haproxy options passed through.
const NERVE = {
  host: '10.3.1.9',
  port: 8443,
  name: 'i-0a1b2c3d4e5f:web',
  weight: null,
  haproxy_server_options: 'check inter 2s rise 3 fall 2',
  labels: { az: 'us-east-1a', canary: false, rack: 12 },
};

const DROVER = {
  host: '10.4.0.2',
  port: 9001,
  weight: 3,
  zone: 'eu-west-1b',
  meta: { version: '1.4.2', build: 812 },
  drain: true,
  maxConnections: 32,
};

describe('the format list', () => {
  it('names auto and the five registry formats', () => {
    assert.deepEqual([...ZNODE_FORMATS], ['auto', 'drover', 'curator', 'finagle', 'nerve', 'plain']);
  });
});

describe("Drover's own format", () => {
  it('reads host, port, weight, zone, meta (numbers as text), the drain flag and maxConnections', () => {
    const expected = {
      host: '10.4.0.2',
      port: 9001,
      weight: 3,
      zone: 'eu-west-1b',
      meta: { version: '1.4.2', build: '812' },
      drain: true,
      maxConnections: 32,
    };
    assert.deepEqual(read(json(DROVER), 'drover'), expected);
    assert.deepEqual(read(json(DROVER), 'auto'), expected);
  });

  it('gives weight 1 by default and leaves out what is absent', () => {
    assert.deepEqual(read(text('{"host":"app-3.internal","port":80}')), { host: 'app-3.internal', port: 80, weight: 1 });
  });

  it('leaves out drain when it is false, and an empty zone or meta', () => {
    const m = read(json({ host: '10.0.0.1', port: 80, drain: false, zone: '', meta: {} }), 'drover');
    assert.deepEqual(m, { host: '10.0.0.1', port: 80, weight: 1 });
    assert.equal(m !== null && 'drain' in m, false);
  });

  it('treats null optional keys as absent', () => {
    const m = read(json({ host: '10.0.0.1', port: 80, weight: null, zone: null, meta: null, drain: null }), 'drover');
    assert.deepEqual(m, { host: '10.0.0.1', port: 80, weight: 1 });
  });

  it('accepts weight 0 and 1000, and booleans in meta as text', () => {
    assert.equal(read(json({ host: 'a.example', port: 1, weight: 0 }))?.weight, 0);
    assert.equal(read(json({ host: 'a.example', port: 65535, weight: 1000 }))?.weight, 1000);
    assert.deepEqual(read(json({ host: 'a.example', port: 1, meta: { tls: true } }))?.meta, { tls: 'true' });
  });

  it('accepts ports and weights written as digit strings', () => {
    assert.deepEqual(read(text('{"host":"10.0.0.1","port":"8080","weight":"3"}')), { host: '10.0.0.1', port: 8080, weight: 3 });
  });

  it('ignores keys it does not know, so newer writers stay readable', () => {
    assert.deepEqual(read(text('{"host":"10.0.0.1","port":80,"uptime":0.7,"zone":"a","future":{"x":[1]}}')), {
      host: '10.0.0.1',
      port: 80,
      weight: 1,
      zone: 'a',
    });
  });

  it('keeps a "__proto__" meta key as a plain key', () => {
    const m = read(text('{"host":"10.0.0.1","port":80,"meta":{"__proto__":"x","constructor":"y"}}'));
    assert.ok(m?.meta);
    assert.equal(Object.getPrototypeOf(m.meta), Object.prototype);
    assert.deepEqual(Object.keys(m.meta), ['__proto__', 'constructor']);
    assert.equal(Object.getOwnPropertyDescriptor(m.meta, '__proto__')?.value, 'x');
  });

  it('reads maxConnections as a number or a digit string, 1 to 1000000, and null as absent', () => {
    assert.deepEqual(read(json({ host: '10.0.0.1', port: 80, maxConnections: 100 }), 'drover'), { host: '10.0.0.1', port: 80, weight: 1, maxConnections: 100 });
    assert.equal(read(json({ host: '10.0.0.1', port: 80, maxConnections: '250' }))?.maxConnections, 250);
    assert.equal(read(json({ host: '10.0.0.1', port: 80, maxConnections: 1 }))?.maxConnections, 1);
    assert.equal(read(json({ host: '10.0.0.1', port: 80, maxConnections: 1_000_000 }))?.maxConnections, 1_000_000);
    const m = read(json({ host: '10.0.0.1', port: 80, maxConnections: null }), 'drover');
    assert.deepEqual(m, { host: '10.0.0.1', port: 80, weight: 1 });
    assert.equal(m !== null && 'maxConnections' in m, false);
  });

  it('takes a member with maxConnections for Drover under auto, even with Nerve keys', () => {
    assert.deepEqual(read(json({ ...NERVE, maxConnections: 64 })), { host: '10.3.1.9', port: 8443, weight: 1, maxConnections: 64 });
    assertUnreadable(json({ ...NERVE, maxConnections: 0 }), 'auto', /^drover member: maxConnections/);
  });

  it('reads data with a UTF-8 byte order mark and surrounding whitespace', () => {
    const data = Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), text('\n  {"host":"10.0.0.1","port":80}\n')]);
    assert.deepEqual(read(data), { host: '10.0.0.1', port: 80, weight: 1 });
  });
});

describe('Apache Curator ServiceInstance', () => {
  it('reads address and port, puts id and name in meta, and ignores payload, uriSpec and the rest', () => {
    const expected = { host: '10.1.4.17', port: 8080, weight: 1, meta: { id: '3f1c2a9e-8d4b-4c55-9a51-2f0e6b7d1c43', name: 'orders' } };
    assert.deepEqual(read(json(CURATOR), 'curator'), expected);
    assert.deepEqual(read(json(CURATOR), 'auto'), expected);
  });

  it('uses sslPort when port is null', () => {
    assert.equal(read(json({ ...CURATOR, port: null, sslPort: 8443 }))?.port, 8443);
    assert.equal(read(json({ name: 'x', address: '10.0.0.1', sslPort: 8443 }), 'curator')?.port, 8443);
  });

  it('uses port when both port and sslPort are set', () => {
    assert.equal(read(json({ ...CURATOR, port: 8080, sslPort: 8443 }))?.port, 8080);
  });

  it('refuses an instance whose port and sslPort are both null', () => {
    assertUnreadable(json({ ...CURATOR, port: null, sslPort: null }), 'auto', /^curator member: port and sslPort are both missing or null$/);
  });

  it('returns null for an instance marked "enabled": false, as Curator itself skips it', () => {
    assert.equal(read(json({ ...CURATOR, enabled: false })), null);
  });

  it('reads an instance of an old Curator without enabled, sslPort or uriSpec', () => {
    const old = { name: 'test', id: 'ca2fff8e', address: 'host-7.example.com', port: 1234, payload: 'From Test', registrationTimeUTC: 1325129459728, serviceType: 'STATIC' };
    assert.deepEqual(read(json(old)), { host: 'host-7.example.com', port: 1234, weight: 1, meta: { id: 'ca2fff8e', name: 'test' } });
  });

  it('reads the IPv6 text Java writes for an address', () => {
    assert.equal(read(json({ ...CURATOR, address: '0:0:0:0:0:0:0:1' }))?.host, '0:0:0:0:0:0:0:1');
    assert.equal(read(json({ ...CURATOR, address: 'fe80:0:0:0:1c2b:3aff:fe4d:5e6f%eth0' }))?.host, 'fe80:0:0:0:1c2b:3aff:fe4d:5e6f%eth0');
  });

  it('ignores the endpoint option, which is for Finagle', () => {
    assert.equal(read(json(CURATOR), 'auto', 'http')?.port, 8080);
  });
});

describe('Finagle server sets', () => {
  it('reads the service endpoint of an ALIVE member and puts the shard in meta', () => {
    const expected = { host: '10.2.0.31', port: 31781, weight: 1, meta: { shard: '3' } };
    assert.deepEqual(read(json(FINAGLE), 'finagle'), expected);
    assert.deepEqual(read(json(FINAGLE), 'auto'), expected);
  });

  it('picks an additional endpoint by name with the endpoint option', () => {
    assert.deepEqual(read(json(FINAGLE), 'finagle', 'http'), { host: '10.2.0.31', port: 31782, weight: 1, meta: { shard: '3' } });
    assert.equal(read(json(FINAGLE), 'auto', 'health')?.port, 31783);
  });

  it('refuses a member that lacks the named endpoint, listing the ones it has', () => {
    assertUnreadable(json(FINAGLE), 'finagle', /no additional endpoint "thrift" \(it has "aurora", "http", "health"\)/, 'thrift');
    assertUnreadable(json({ ...FINAGLE, additionalEndpoints: {} }), 'auto', /no additional endpoint "http" \(it has none\)/, 'http');
  });

  it('returns null for DEAD, STARTING, STOPPING, STOPPED and WARNING members', () => {
    for (const status of ['DEAD', 'STARTING', 'STOPPING', 'STOPPED', 'WARNING']) {
      assert.equal(read(json({ ...FINAGLE, status })), null, status);
      assert.equal(read(json({ ...FINAGLE, status }), 'finagle', 'http'), null, status);
    }
  });

  it('matches ALIVE case-sensitively, as Finagle does', () => {
    assert.equal(read(json({ ...FINAGLE, status: 'alive' })), null);
  });

  it('still reports a wrong endpoint name on a member that is not ALIVE', () => {
    assertUnreadable(json({ ...FINAGLE, status: 'DEAD' }), 'finagle', /no additional endpoint/, 'thrift');
  });

  it('reads a member without shard or additional endpoints', () => {
    assert.deepEqual(read(text('{"serviceEndpoint":{"host":"svc-1.example","port":9990},"additionalEndpoints":{},"status":"ALIVE"}')), {
      host: 'svc-1.example',
      port: 9990,
      weight: 1,
    });
  });

  it('reads IPv6 endpoints', () => {
    assert.equal(read(json({ ...FINAGLE, serviceEndpoint: { host: '2001:db8::7', port: 9990 } }))?.host, '2001:db8::7');
  });
});

describe('Nerve (Airbnb SmartStack)', () => {
  it('reads host, port, weight null as 1, and labels and name into meta', () => {
    const expected = {
      host: '10.3.1.9',
      port: 8443,
      weight: 1,
      meta: { az: 'us-east-1a', canary: 'false', rack: '12', name: 'i-0a1b2c3d4e5f:web' },
    };
    assert.deepEqual(read(json(NERVE), 'nerve'), expected);
    assert.deepEqual(read(json(NERVE), 'auto'), expected);
  });

  it('reads a weight and a numeric name', () => {
    assert.deepEqual(read(json({ host: '10.3.1.9', port: 80, name: 42, weight: 7 })), { host: '10.3.1.9', port: 80, weight: 7, meta: { name: '42' } });
  });

  it('lets the name field win over a label called name', () => {
    assert.equal(read(json({ ...NERVE, labels: { name: 'from-label' } }))?.meta?.name, 'i-0a1b2c3d4e5f:web');
  });

  it('reads a Nerve member as Drover when asked, dropping what Drover does not know', () => {
    assert.deepEqual(read(json(NERVE), 'drover'), { host: '10.3.1.9', port: 8443, weight: 1 });
  });

  it('reads a member with both Drover and Nerve keys as Drover under auto', () => {
    assert.deepEqual(read(json({ ...NERVE, zone: 'z1' })), { host: '10.3.1.9', port: 8443, weight: 1, zone: 'z1' });
  });
});

describe('plain host:port', () => {
  const cases: [string, string, number][] = [
    ['10.0.0.1:8080', '10.0.0.1', 8080],
    ['http://10.0.0.1:8080', '10.0.0.1', 8080],
    ['http://10.0.0.1:8080/', '10.0.0.1', 8080],
    ['10.0.0.1:8080\n', '10.0.0.1', 8080],
    ['  web-7.internal.example:443 \r\n', 'web-7.internal.example', 443],
    ['[::1]:8080', '::1', 8080],
    ['http://[2001:db8::1]:80\n', '2001:db8::1', 80],
  ];
  for (const [data, host, port] of cases) {
    it(`reads ${JSON.stringify(data)} both as plain and under auto`, () => {
      assert.deepEqual(read(text(data), 'plain'), { host, port, weight: 1 });
      assert.deepEqual(read(text(data), 'auto'), { host, port, weight: 1 });
    });
  }
});

describe('IPv6 hosts in JSON', () => {
  it('accepts them with and without brackets', () => {
    assert.equal(read(json({ host: '::1', port: 80 }))?.host, '::1');
    assert.equal(read(json({ host: '[::1]', port: 80 }))?.host, '::1');
    assert.equal(read(json({ host: '2001:db8::42', port: 80, zone: 'a' }))?.host, '2001:db8::42');
  });

  it('does not accept brackets around an IPv4 address', () => {
    assertUnreadable(json({ host: '[10.0.0.1]', port: 80 }), 'auto', /host "\[10\.0\.0\.1\]" is not a valid IP address or host name/);
  });
});

describe('explicit format against auto', () => {
  it('refuses plain text when a JSON format is named', () => {
    for (const format of ['drover', 'curator', 'finagle', 'nerve'] as const) {
      assertUnreadable(text('10.0.0.1:80'), format, new RegExp(`^${format} member: not valid JSON`));
    }
  });

  it('refuses JSON when plain is named', () => {
    assertUnreadable(json(DROVER), 'plain', /^plain member: .* is not an address of the form host:port/);
  });

  it('reads a sample only as its own format or a compatible one', () => {
    assertUnreadable(json(DROVER), 'curator', /^curator member: address is missing$/);
    assertUnreadable(json(CURATOR), 'drover', /^drover member: host is missing$/);
    assertUnreadable(json(CURATOR), 'finagle', /^finagle member: serviceEndpoint must be an object with host and port, got undefined$/);
    assertUnreadable(json(FINAGLE), 'nerve', /^nerve member: port is missing$/);
  });

  it('names the detected format in errors under auto', () => {
    const err = assertUnreadable(json({ ...FINAGLE, serviceEndpoint: { host: '10.0.0.1', port: 0 } }), 'auto', /^finagle member: serviceEndpoint\.port must be a whole number 1-65535, got 0$/);
    assert.equal(err.format, 'finagle');
    assert.equal(assertUnreadable(text(''), 'auto', /empty/).format, 'auto');
  });
});

describe('unreadable data raises MemberFormatError and nothing else', () => {
  const huge = '9'.repeat(400);
  const table: [string, Buffer | null, ZnodeFormat, RegExp][] = [
    ['no data at all', null, 'auto', /^member: the znode has no data$/],
    ['empty data', text(''), 'auto', /^member: the data is empty$/],
    ['only whitespace', text(' \n\t'), 'drover', /the data is empty/],
    ['bytes that are not UTF-8', Buffer.from([0xff, 0xfe, 0x00, 0x80]), 'auto', /is not UTF-8 text/],
    ['JSON null', text('null'), 'drover', /expected a JSON object, got null/],
    ['a JSON array', text('[{"host":"10.0.0.1","port":80}]'), 'drover', /expected a JSON object, got an array/],
    ['a JSON number', text('8080'), 'nerve', /expected a JSON object, got 8080/],
    ['a JSON string', text('"10.0.0.1:80"'), 'curator', /expected a JSON object, got "10\.0\.0\.1:80"/],
    ['JSON null under auto', text('null'), 'auto', /"null" is not an address/],
    ['a JSON number under auto', text('8080'), 'auto', /"8080" is not an address/],
    ['NaN', text('NaN'), 'auto', /"NaN" is not an address/],
    ['NaN as a port', text('{"host":"10.0.0.1","port":NaN}'), 'auto', /not valid JSON/],
    ['truncated JSON', text('{"host":"10.0.0.1","po'), 'auto', /^member: not valid JSON/],
    ['JSON of no known shape', text('{"hostname":"10.0.0.1","port":80}'), 'auto', /JSON of no known shape/],
    ['an address without any port', text('{"address":"10.0.0.1"}'), 'auto', /JSON of no known shape/],
    ['port 0', json({ host: '10.0.0.1', port: 0 }), 'auto', /port must be a whole number 1-65535, got 0/],
    ['port 65536', json({ host: '10.0.0.1', port: 65536 }), 'auto', /got 65536/],
    ['a negative port', json({ host: '10.0.0.1', port: -80 }), 'auto', /got -80/],
    ['a fractional port', json({ host: '10.0.0.1', port: 80.5 }), 'auto', /got 80\.5/],
    ['a port that overflows to Infinity', text('{"host":"10.0.0.1","port":1e400}'), 'auto', /got Infinity/],
    ['a huge port', text(`{"host":"10.0.0.1","port":${huge}}`), 'auto', /got Infinity/],
    ['a port string with letters', json({ host: '10.0.0.1', port: '80a' }), 'auto', /got "80a"/],
    ['a port string with spaces', json({ host: '10.0.0.1', port: ' 80' }), 'auto', /got " 80"/],
    ['a hexadecimal port string', json({ host: '10.0.0.1', port: '0x50' }), 'auto', /got "0x50"/],
    ['a port string out of range', json({ host: '10.0.0.1', port: '99999' }), 'auto', /got "99999"/],
    ['a boolean port', json({ host: '10.0.0.1', port: true }), 'auto', /got true/],
    ['a port object', json({ host: '10.0.0.1', port: { value: 80 } }), 'auto', /got \{"value":80\}/],
    ['a null port', json({ host: '10.0.0.1', port: null }), 'drover', /^drover member: port is missing$/],
    ['a missing host', json({ port: 80, zone: 'a' }), 'drover', /^drover member: host is missing$/],
    ['a numeric host', json({ host: 10, port: 80 }), 'auto', /host must be a string, got 10/],
    ['an empty host', json({ host: '', port: 80 }), 'auto', /host "" is not a valid IP address or host name/],
    ['a host with its own port', json({ host: '10.0.0.1:80', port: 80 }), 'auto', /host "10\.0\.0\.1:80" is not a valid/],
    ['a URL as host', json({ host: 'http://10.0.0.1', port: 80 }), 'auto', /host "http:\/\/10\.0\.0\.1" is not a valid/],
    ['a broken IPv4 host', json({ host: '999.1.1.1', port: 80 }), 'auto', /is not a valid IP address/],
    ['a host with a space', json({ host: 'web 1', port: 80 }), 'auto', /is not a valid IP address/],
    ['a very long host', json({ host: 'a'.repeat(5000), port: 80 }), 'auto', /host "a{40,}\.\.\. is not a valid/],
    ['weight 1001', json({ host: '10.0.0.1', port: 80, weight: 1001 }), 'auto', /weight must be a whole number 0-1000, got 1001/],
    ['a negative weight', json({ host: '10.0.0.1', port: 80, weight: -1 }), 'auto', /weight .* got -1/],
    ['a fractional weight', json({ host: '10.0.0.1', port: 80, weight: 2.5 }), 'auto', /weight .* got 2\.5/],
    ['a text weight', json({ host: '10.0.0.1', port: 80, weight: 'heavy' }), 'auto', /weight .* got "heavy"/],
    ['a zone that is not a string', json({ host: '10.0.0.1', port: 80, zone: 5 }), 'auto', /zone must be a string, got 5/],
    ['meta that is an array', json({ host: '10.0.0.1', port: 80, meta: ['a'] }), 'auto', /meta must be an object of strings, got an array/],
    ['a nested meta value', json({ host: '10.0.0.1', port: 80, meta: { a: { b: 1 } } }), 'auto', /meta\.a must be a string, number or boolean, got an object/],
    ['a null meta value', json({ host: '10.0.0.1', port: 80, meta: { a: null } }), 'auto', /meta\.a .* got null/],
    ['a drain flag that is text', json({ host: '10.0.0.1', port: 80, drain: 'yes' }), 'auto', /drain must be true or false, got "yes"/],
    ['maxConnections 0', json({ host: '10.0.0.1', port: 80, maxConnections: 0 }), 'auto', /^drover member: maxConnections must be a whole number 1-1000000, got 0$/],
    ['maxConnections 1000001', json({ host: '10.0.0.1', port: 80, maxConnections: 1_000_001 }), 'drover', /maxConnections must be .* got 1000001$/],
    ['a negative maxConnections', json({ host: '10.0.0.1', port: 80, maxConnections: -5 }), 'auto', /maxConnections .* got -5$/],
    ['a fractional maxConnections', json({ host: '10.0.0.1', port: 80, maxConnections: 2.5 }), 'auto', /maxConnections .* got 2\.5$/],
    ['a text maxConnections', json({ host: '10.0.0.1', port: 80, maxConnections: 'unlimited' }), 'auto', /maxConnections .* got "unlimited"$/],
    ['a boolean maxConnections', json({ host: '10.0.0.1', port: 80, maxConnections: true }), 'auto', /maxConnections .* got true$/],
    ['Nerve labels that are text', json({ host: '10.0.0.1', port: 80, labels: 'a=b' }), 'auto', /^nerve member: labels must be an object/],
    ['a Nerve name that is an object', json({ host: '10.0.0.1', port: 80, name: {} }), 'auto', /^nerve member: name must be a string or a number, got an object/],
    ['a Curator address that is not a string', json({ address: 42, port: 80 }), 'auto', /^curator member: address must be a string, got 42/],
    ['a Curator instance without address', json({ name: 'x', port: 80 }), 'curator', /^curator member: address is missing$/],
    ['a Curator port that is text', json({ ...CURATOR, port: 'http' }), 'auto', /^curator member: port must be a whole number 1-65535, got "http"/],
    ['a Curator sslPort out of range', json({ ...CURATOR, port: null, sslPort: 70000 }), 'auto', /^curator member: sslPort must be .* got 70000/],
    ['a Curator enabled flag that is text', json({ ...CURATOR, enabled: 'no' }), 'auto', /enabled must be true or false/],
    ['a Curator id that is an object', json({ ...CURATOR, id: { uuid: 'x' } }), 'auto', /^curator member: id must be a string or a number/],
    ['a Finagle member without status', json({ serviceEndpoint: { host: '10.0.0.1', port: 80 } }), 'auto', /^finagle member: status is missing$/],
    ['a numeric Finagle status', json({ ...FINAGLE, status: 2 }), 'auto', /status must be a string such as "ALIVE", got 2/],
    ['a Finagle serviceEndpoint that is null', json({ ...FINAGLE, serviceEndpoint: null }), 'auto', /serviceEndpoint must be an object with host and port, got null/],
    ['a Finagle serviceEndpoint that is text', json({ ...FINAGLE, serviceEndpoint: '10.0.0.1:80' }), 'auto', /serviceEndpoint must be an object/],
    ['a Finagle endpoint without host', json({ ...FINAGLE, serviceEndpoint: { port: 80 } }), 'auto', /serviceEndpoint\.host is missing/],
    ['a Finagle shard that is a list', json({ ...FINAGLE, shard: [1] }), 'auto', /shard must be a string or a number, got an array/],
    ['plain text that is not host:port', text('web-1'), 'auto', /"web-1" is not an address of the form host:port/],
    ['plain text with a bad port', text('10.0.0.1:99999'), 'plain', /port 99999 is out of range/],
    ['plain text with port 0', text('10.0.0.1:0'), 'plain', /port 0 is out of range/],
    ['plain IPv6 without brackets', text('2001:db8::1:80'), 'auto', /is not an address of the form host:port/],
    ['plain text far too long', text(`a.${'b'.repeat(100_000)}:80`), 'auto', /^plain member: 100005 characters is too long for host:port$/],
    ['a format that does not exist', text('10.0.0.1:80'), 'xml' as ZnodeFormat, /^member: unknown format "xml"$/],
  ];
  for (const [name, data, format, message] of table) {
    it(`refuses ${name}`, () => {
      assertUnreadable(data, format, message);
    });
  }
});

describe('odd input never escapes as another error', () => {
  // Deterministic, so a failure can be replayed.
  function random(seed: number): () => number {
    return () => {
      seed = (seed + 0x6d2b79f5) | 0;
      let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
  }

  const OPTIONS: { format: ZnodeFormat; endpoint?: string }[] = [
    ...ZNODE_FORMATS.map((format) => ({ format })),
    { format: 'auto', endpoint: 'http' },
    { format: 'finagle', endpoint: 'http' },
    { format: 'finagle', endpoint: '__proto__' },
    { format: 'finagle', endpoint: 'constructor' },
  ];

  /** Reads `data` with every option set; each read must give a well-formed member, null, or a MemberFormatError. */
  function readEveryWay(data: Buffer): void {
    for (const options of OPTIONS) {
      let result: RegistryMember | null;
      try {
        result = parseMember(data, options);
      } catch (err) {
        if (err instanceof MemberFormatError) continue;
        assert.fail(`${JSON.stringify(options)} on ${JSON.stringify(data.toString('utf8').slice(0, 200))} threw ${(err as Error).stack}`);
      }
      if (result !== null) assertWellFormed(result);
    }
  }

  const ODD_VALUES: unknown[] = [
    null, true, false, 0, -0, -1, 1.5, 1e308, Number.MAX_SAFE_INTEGER + 2, '', ' ', '8080', 'ALIVE', '::1', '[::1]',
    'http://x:1', '__proto__', [], [1, 2], {}, { host: '10.0.0.1', port: 80 }, JSON.parse('{"__proto__":{"host":"10.0.0.1"}}'), 'a'.repeat(300),
  ];

  /** Every copy of `sample` with one value (at any depth) replaced by an odd value or removed. */
  function* variants(sample: unknown): Generator<unknown> {
    if (typeof sample !== 'object' || sample === null) return;
    const entries = Object.entries(sample);
    for (const [key, value] of entries) {
      const rebuild = (v: unknown, drop = false) =>
        Array.isArray(sample)
          ? sample.map((x, i) => (String(i) === key ? v : x))
          : Object.fromEntries(entries.filter(([k]) => !(drop && k === key)).map(([k, x]) => [k, k === key ? v : x]));
      yield rebuild(undefined, true);
      for (const odd of ODD_VALUES) yield rebuild(odd);
      for (const inner of variants(value)) yield rebuild(inner);
    }
  }

  it('replaces each field of each sample with odd values', () => {
    let count = 0;
    for (const sample of [DROVER, CURATOR, FINAGLE, NERVE]) {
      for (const variant of variants(sample)) {
        readEveryWay(json(variant));
        count++;
      }
    }
    assert.ok(count > 1000, `only ${count} variants`);
  });

  it('mutates the bytes of each sample at random', () => {
    const next = random(20240601);
    const alphabet = Buffer.from('{}[]":,.-+0123456789eE aA\\\n\x00\xff');
    for (const sample of [json(DROVER), json(CURATOR), json(FINAGLE), json(NERVE), text('http://[2001:db8::1]:8080\n')]) {
      for (let i = 0; i < 400; i++) {
        const bytes = Buffer.from(sample);
        const at = Math.floor(next() * bytes.length);
        const choice = next();
        let mutated: Buffer;
        if (choice < 0.4) {
          bytes[at] = alphabet[Math.floor(next() * alphabet.length)]!;
          mutated = bytes;
        } else if (choice < 0.7) {
          mutated = Buffer.concat([bytes.subarray(0, at), bytes.subarray(at + 1)]);
        } else if (choice < 0.85) {
          mutated = bytes.subarray(0, at);
        } else {
          bytes[at] = Math.floor(next() * 256);
          mutated = bytes;
        }
        readEveryWay(mutated);
      }
    }
  });
});
