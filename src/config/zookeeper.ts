import { isScalar } from 'yaml';
import { parseAddress } from './address.js';
import { join, type MaybeNode, type Reader } from './reader.js';
import { DEFAULTS, type DroverConfig, type ServiceZooKeeperConfig } from './schema.js';

const FORMATS = ['auto', 'drover', 'curator', 'finagle', 'nerve', 'plain'] as const;

/** Why a ZooKeeper path is not valid, or undefined when it is. */
export function zkPathProblem(path: string): string | undefined {
  if (!path.startsWith('/')) return 'must start with /';
  if (path !== '/' && path.endsWith('/')) return 'must not end with /';
  if (path.split('/').slice(1).some((p) => p === '' || p === '.' || p === '..')) return 'has an empty, . or .. segment';
  return undefined;
}

/** Reads the top-level `zookeeper:` block. */
export function readZooKeeper(r: Reader, node: MaybeNode): DroverConfig['zookeeper'] {
  const m = r.map(node, 'zookeeper', ['connect', 'sessionTimeout', 'auth']);
  if (!m) return undefined;
  let connect: string | undefined;
  if (!m.has('connect')) r.report(node, 'zookeeper.connect', 'required: host:port[,host:port...][/chroot]');
  else {
    const valueNode = m.get('connect')!.value;
    connect = r.string(valueNode, 'zookeeper.connect');
    if (connect !== undefined) {
      const slash = connect.indexOf('/');
      const hosts = slash < 0 ? connect : connect.slice(0, slash);
      const chroot = slash < 0 ? undefined : connect.slice(slash);
      for (const h of hosts.split(',')) {
        const a = parseAddress(h.trim());
        if (typeof a === 'string') {
          r.report(valueNode, 'zookeeper.connect', a);
          connect = undefined;
        }
      }
      const problem = chroot === undefined ? undefined : zkPathProblem(chroot);
      if (problem) {
        r.report(valueNode, 'zookeeper.connect', `chroot "${chroot}" ${problem}`);
        connect = undefined;
      }
    }
  }
  let sessionTimeout: number | undefined = DEFAULTS.zookeeper.sessionTimeout;
  if (m.has('sessionTimeout')) {
    sessionTimeout = r.duration(m.get('sessionTimeout')!.value, 'zookeeper.sessionTimeout');
    if (sessionTimeout !== undefined && (sessionTimeout < 1000 || sessionTimeout > 600_000)) {
      r.report(m.get('sessionTimeout')!.value, 'zookeeper.sessionTimeout', 'must be from 1s to 10m');
      sessionTimeout = undefined;
    }
  }
  const auth: { scheme: string; credentials: string }[] = [];
  if (m.has('auth')) {
    const items = r.seq(m.get('auth')!.value, 'zookeeper.auth') ?? [];
    items.forEach((item, i) => {
      const p = join('zookeeper.auth', i);
      const a = r.map(item, p, ['scheme', 'credentials']);
      if (!a) return;
      const scheme = a.has('scheme') ? r.string(a.get('scheme')!.value, join(p, 'scheme')) : (r.report(item, join(p, 'scheme'), 'required, e.g. digest'), undefined);
      const credentials = a.has('credentials')
        ? r.string(a.get('credentials')!.value, join(p, 'credentials'))
        : (r.report(item, join(p, 'credentials'), 'required, e.g. "user:password"'), undefined);
      if (scheme && credentials) auth.push({ scheme, credentials });
    });
  }
  if (connect === undefined || sessionTimeout === undefined) return undefined;
  return { connect, sessionTimeout, auth };
}

/** Reads a service's `zookeeper:` block: a path, or `{ path, format, endpoint }`. */
export function readServiceZooKeeper(r: Reader, node: MaybeNode, path: string): ServiceZooKeeperConfig | undefined {
  const v = r.resolve(node);
  let zkPath: string | undefined;
  let format: ServiceZooKeeperConfig['format'] | undefined = 'auto';
  let endpoint: string | undefined;
  let pathNode: MaybeNode = v;
  if (isScalar(v)) zkPath = r.string(v, path);
  else {
    const m = r.map(v, path, ['path', 'format', 'endpoint']);
    if (!m) return undefined;
    if (!m.has('path')) r.report(v, join(path, 'path'), 'required: the parent znode of the members');
    else {
      pathNode = m.get('path')!.value;
      zkPath = r.string(pathNode, join(path, 'path'));
    }
    if (m.has('format')) format = r.oneOf(m.get('format')!.value, join(path, 'format'), FORMATS);
    if (m.has('endpoint')) endpoint = r.string(m.get('endpoint')!.value, join(path, 'endpoint'));
  }
  const problem = zkPath === undefined ? undefined : zkPathProblem(zkPath);
  if (problem) {
    r.report(pathNode, isScalar(v) ? path : join(path, 'path'), `"${zkPath}" ${problem}`);
    return undefined;
  }
  if (!zkPath || !format) return undefined;
  return { path: zkPath, format, ...(endpoint ? { endpoint } : {}) };
}
