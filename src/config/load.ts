import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { isMap, isScalar, LineCounter, parseDocument, type Node } from 'yaml';
import {
  defaultStrategy,
  StrategyOptionsError,
  strategies,
  type StrategyEnv,
  type StrategyFactory,
} from '../../strategies/index.js';
import { ConfigInvalidError, ConfigUnreadableError } from '../errors.js';
import { bindsOverlap, parseAddress, type Address } from './address.js';
import { readListener, readMethods } from './listener.js';
import { readServiceZooKeeper, readZooKeeper } from './zookeeper.js';
import { readAccessLog, readAdmin } from './admin.js';
import { positiveDuration, readAgent, readHealthCheck, readOutlier, readPercent } from './health.js';
import { join, Reader, type MaybeNode } from './reader.js';
import {
  DEFAULTS,
  LOG_LEVELS,
  type DroverConfig,
  type ListenerConfig,
  type Member,
  type ServiceConfig,
  type ServiceZooKeeperConfig,
  type StrategyConfig,
} from './schema.js';

const NAME = /^[A-Za-z0-9_.-]+$/;

/**
 * Reads and validates a config file. Throws ConfigUnreadableError when the
 * file cannot be read and ConfigInvalidError listing every problem found;
 * custom strategy modules are imported and built once here, so a bad module
 * or bad options fail `drover check`, not the first connection.
 */
export async function loadConfig(file: string): Promise<DroverConfig> {
  const path = resolve(file);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new ConfigUnreadableError(file, err);
  }
  return parseConfig(text, path, file);
}

/**
 * Validates config text. `path` is the absolute file (custom strategy modules
 * resolve against its folder); `shownAs` is how problems name the file.
 */
export async function parseConfig(text: string, path: string, shownAs = path): Promise<DroverConfig> {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true, merge: true });
  const r = new Reader(shownAs, doc, lines);
  for (const e of doc.errors) {
    const { line, col } = lines.linePos(e.pos[0]);
    r.problems.push({ file: shownAs, line, column: col, path: '', message: e.message.split('\n')[0]! });
  }
  if (r.problems.length) throw new ConfigInvalidError(r.problems);
  if (doc.contents === null || (isScalar(doc.contents) && doc.contents.value === null)) {
    r.report(null, '', 'the config is empty: it needs at least `services:` and `listeners:`');
    throw new ConfigInvalidError(r.problems);
  }

  const root = r.map(doc.contents, '', ['drainTimeout', 'logLevel', 'zookeeper', 'services', 'listeners', 'admin', 'accessLog']);
  if (!root) throw new ConfigInvalidError(r.problems);
  const drainTimeout = optional(root.get('drainTimeout')?.value, DEFAULTS.drainTimeout, (n) => r.duration(n, 'drainTimeout'));
  const logLevel = optional(root.get('logLevel')?.value, DEFAULTS.logLevel, (n) => r.oneOf(n, 'logLevel', LOG_LEVELS));

  const zookeeper = root.has('zookeeper') ? readZooKeeper(r, root.get('zookeeper')!.value) : undefined;
  const admin = root.has('admin') ? readAdmin(r, root.get('admin')!.value) : undefined;
  const accessLogText = root.has('accessLog') ? readAccessLog(r, root.get('accessLog')!.value) : undefined;
  const accessLog = accessLogText === undefined || accessLogText === 'stdout' ? accessLogText : resolve(dirname(path), accessLogText);
  const services = new Map<string, ServiceDraft>();
  const servicesPair = root.get('services');
  if (!servicesPair) r.report(doc.contents, 'services', 'required: at least one service');
  else {
    const entries = r.map(servicesPair.value, 'services', null);
    for (const [name, pair] of entries ?? []) {
      const path = join('services', name);
      if (!NAME.test(name) || name === '.' || name === '..') {
        r.report(pair.key, path, 'service names may use letters, digits, _ . and - only, and are not . or ..');
      }
      const draft = readService(r, name, pair.value, path);
      if (draft) services.set(name, draft);
      if (draft?.config.zookeeper && !root.has('zookeeper')) {
        r.report(pair.key, join(path, 'zookeeper'), 'needs the top-level `zookeeper:` block (connect: host:port,...)');
      }
      if (draft?.config.healthCheck?.shared && !root.has('zookeeper')) {
        r.report(pair.key, join(path, 'healthCheck.shared'), 'shared checks elect their checker in ZooKeeper: they need the top-level `zookeeper:` block');
      }
    }
  }

  const listeners: ListenerConfig[] = [];
  const listenersPair = root.get('listeners');
  if (!listenersPair) r.report(doc.contents, 'listeners', 'required: at least one listener');
  else {
    const items = r.seq(listenersPair.value, 'listeners') ?? [];
    if (items.length === 0 && r.resolve(listenersPair.value)) r.report(listenersPair.value, 'listeners', 'required: at least one listener');
    const names = new Map<string, string>();
    const binds: Array<{ at: string; bind: Address }> = [];
    items.forEach((node, i) => {
      const path = join('listeners', i);
      const { listener, name, bind, bindNode } = readListener(r, node, path, services);
      const other = name === undefined ? undefined : names.get(name);
      if (other) r.report(node, join(path, 'name'), `listener name "${name}" is already used by ${other}`);
      if (name !== undefined) names.set(name, path);
      const clash = bind && (binds.find((b) => bindsOverlap(b.bind, bind)) ?? (admin && bindsOverlap(admin.listen, bind) ? { at: 'admin.listen', bind: admin.listen } : undefined));
      if (bind && clash) r.report(bindNode, join(path, 'bind'), `${bind.id} collides with ${clash.at} (${clash.bind.id})`);
      if (bind) binds.push({ at: path, bind });
      if (listener) listeners.push(listener);
    });
  }

  const resolved = new Map<string, ServiceConfig>();
  for (const [name, draft] of services) {
    const strategy = await resolveStrategy(r, draft.strategyNode, join(join('services', name), 'strategy'), path);
    if (strategy) resolved.set(name, { ...draft.config, strategy });
  }
  if (r.problems.length) {
    r.problems.sort((a, b) => a.line - b.line || a.column - b.column);
    throw new ConfigInvalidError(r.problems);
  }
  return {
    file: path,
    drainTimeout: drainTimeout!,
    logLevel: logLevel!,
    ...(zookeeper ? { zookeeper } : {}),
    services: resolved,
    listeners,
    ...(admin ? { admin } : {}),
    ...(accessLog ? { accessLog } : {}),
  };
}

interface ServiceDraft {
  config: Omit<ServiceConfig, 'strategy'>;
  strategyNode: MaybeNode;
}

function readService(r: Reader, name: string, node: MaybeNode, path: string): ServiceDraft | undefined {
  const m = r.map(node, path, [
    'static',
    'zookeeper',
    'strategy',
    'retries',
    'timeouts',
    'idempotentMethods',
    'maxSockets',
    'queue',
    'healthCheck',
    'outlier',
    'agent',
    'slowStart',
    'panicThreshold',
  ]);
  if (!m) return undefined;
  let members: Member[] = [];
  let zookeeper: ServiceZooKeeperConfig | undefined;
  const staticPair = m.get('static');
  if (staticPair && m.has('zookeeper')) r.report(m.get('zookeeper')!.key, join(path, 'zookeeper'), 'give either `static:` or `zookeeper:`, not both');
  else if (m.has('zookeeper')) zookeeper = readServiceZooKeeper(r, m.get('zookeeper')!.value, join(path, 'zookeeper'));
  else if (!staticPair) r.report(node, join(path, 'static'), 'required: `static:` (a list of host:port) or `zookeeper:` (a path)');
  else members = readMembers(r, staticPair.value, join(path, 'static'));
  const retries = optional(m.get('retries')?.value, DEFAULTS.service.retries, (n) => r.integer(n, join(path, 'retries'), 0, 100));
  const t = DEFAULTS.service.timeouts;
  let timeouts = { ...t };
  const timeoutsPair = m.get('timeouts');
  if (timeoutsPair) {
    const tp = join(path, 'timeouts');
    const tm = r.map(timeoutsPair.value, tp, ['connect', 'idle', 'keepAlive']);
    if (tm) {
      const read = (key: keyof typeof t) => optional(tm.get(key)?.value, t[key], (n) => positiveDuration(r, n, join(tp, key))) ?? t[key];
      timeouts = { connect: read('connect'), idle: read('idle'), keepAlive: read('keepAlive') };
    }
  }
  const idempotentMethods = m.has('idempotentMethods')
    ? readMethods(r, m.get('idempotentMethods')!.value, join(path, 'idempotentMethods'))
    : DEFAULTS.service.idempotentMethods;
  const maxSockets = optional(m.get('maxSockets')?.value, DEFAULTS.service.maxSockets, (n) => r.integer(n, join(path, 'maxSockets'), 1, 100_000));
  const queue = optional(m.get('queue')?.value, DEFAULTS.service.queue, (n) => readQueue(r, n, join(path, 'queue')));
  const healthCheck = m.has('healthCheck') ? readHealthCheck(r, m.get('healthCheck')!.value, join(path, 'healthCheck')) : undefined;
  const outlier = m.has('outlier') ? readOutlier(r, m.get('outlier')!.value, join(path, 'outlier')) : undefined;
  const agent = m.has('agent') ? readAgent(r, m.get('agent')!.value, join(path, 'agent')) : undefined;
  if (agent && agent.port === undefined && staticPair && members.some((x) => x.agentPort === undefined)) {
    r.report(m.get('agent')!.key, join(path, 'agent.port'), 'required unless every static member sets its own agentPort');
  }
  const slowStart = optional(m.get('slowStart')?.value, DEFAULTS.service.slowStart, (n) => r.duration(n, join(path, 'slowStart')));
  const panicThreshold = optional(m.get('panicThreshold')?.value, DEFAULTS.service.panicThreshold, (n) => readPercent(r, n, join(path, 'panicThreshold')));
  return {
    config: {
      name,
      static: members,
      ...(zookeeper ? { zookeeper } : {}),
      retries: retries ?? DEFAULTS.service.retries,
      timeouts,
      idempotentMethods,
      maxSockets: maxSockets ?? DEFAULTS.service.maxSockets,
      queue: queue ?? DEFAULTS.service.queue,
      slowStart: slowStart ?? DEFAULTS.service.slowStart,
      panicThreshold: panicThreshold ?? DEFAULTS.service.panicThreshold,
      ...(healthCheck ? { healthCheck } : {}),
      ...(outlier ? { outlier } : {}),
      ...(agent ? { agent } : {}),
    },
    strategyNode: m.get('strategy')?.value,
  };
}

/** A service's `queue:` block; either key may be given alone. Size 0 is no queue (503 at once). */
function readQueue(r: Reader, node: MaybeNode, path: string): ServiceConfig['queue'] | undefined {
  const m = r.map(node, path, ['size', 'timeout']);
  if (!m) return undefined;
  const d = DEFAULTS.service.queue;
  const size = optional(m.get('size')?.value, d.size, (n) => r.integer(n, join(path, 'size'), 0, 1_000_000));
  const timeout = optional(m.get('timeout')?.value, d.timeout, (n) => positiveDuration(r, n, join(path, 'timeout')));
  return size === undefined || timeout === undefined ? undefined : { size, timeout };
}

function readMembers(r: Reader, node: MaybeNode, path: string): Member[] {
  const items = r.seq(node, path) ?? [];
  const seen = new Map<string, string>();
  const out: Member[] = [];
  items.forEach((item, i) => {
    const p = join(path, i);
    const resolved = r.resolve(item);
    let addressNode: MaybeNode = resolved;
    let weight = DEFAULTS.member.weight;
    let zone: string | undefined;
    let meta: Record<string, string> | undefined;
    let agentPort: number | undefined;
    let maxConnections: number | undefined;
    if (isMap(resolved)) {
      const m = r.map(resolved, p, ['address', 'weight', 'zone', 'meta', 'agentPort', 'maxConnections']);
      if (!m) return;
      addressNode = m.get('address')?.value;
      if (!m.has('address')) {
        r.report(resolved, join(p, 'address'), 'required: host:port');
        return;
      }
      weight = optional(m.get('weight')?.value, weight, (n) => r.integer(n, join(p, 'weight'), 0, 1000)) ?? weight;
      if (m.has('zone')) zone = r.string(m.get('zone')?.value, join(p, 'zone'));
      if (m.has('meta')) meta = readMeta(r, m.get('meta')?.value, join(p, 'meta'));
      if (m.has('agentPort')) agentPort = r.integer(m.get('agentPort')?.value, join(p, 'agentPort'), 1, 65535);
      if (m.has('maxConnections')) maxConnections = r.integer(m.get('maxConnections')?.value, join(p, 'maxConnections'), 1, 1_000_000);
    }
    const text = r.string(addressNode, isMap(resolved) ? join(p, 'address') : p);
    if (text === undefined) return;
    const address = parseAddress(text);
    if (typeof address === 'string') return r.report(addressNode, isMap(resolved) ? join(p, 'address') : p, address);
    const dup = seen.get(address.id);
    if (dup) return r.report(addressNode, p, `${address.id} is already listed at ${dup}`);
    seen.set(address.id, p);
    out.push({
      host: address.host,
      port: address.port,
      weight,
      ...(zone ? { zone } : {}),
      ...(meta ? { meta } : {}),
      ...(agentPort !== undefined ? { agentPort } : {}),
      ...(maxConnections !== undefined ? { maxConnections } : {}),
    });
  });
  return out;
}

function readMeta(r: Reader, node: MaybeNode, path: string): Record<string, string> | undefined {
  const m = r.map(node, path, null);
  if (!m) return undefined;
  const out: Record<string, string> = {};
  for (const [k, pair] of m) {
    const v = r.resolve(pair.value);
    if (isScalar(v) && v.value !== null && typeof v.value !== 'object') out[k] = String(v.value);
    else r.report(pair.value, join(path, k), 'meta values must be strings or numbers');
  }
  return out;
}

async function resolveStrategy(r: Reader, node: MaybeNode, path: string, configPath: string): Promise<StrategyConfig | undefined> {
  node = r.resolve(node);
  let label = defaultStrategy;
  let factory: StrategyFactory | undefined = strategies[defaultStrategy];
  let options: Record<string, unknown> = {};
  let optionsNode: MaybeNode = node;
  const builtin = (n: MaybeNode, p: string) => {
    const name = r.string(n, p);
    if (name === undefined) return undefined;
    const f = Object.hasOwn(strategies, name) ? strategies[name] : undefined;
    if (!f) r.report(n, p, `unknown strategy "${name}"; built-in strategies: ${Object.keys(strategies).join(', ')}`);
    label = name;
    return f;
  };
  if (node === null || node === undefined) {
    // default strategy
  } else if (isScalar(node)) {
    factory = builtin(node, path);
  } else {
    const m = r.map(node, path, ['name', 'module', 'options']);
    if (!m) return undefined;
    if (m.has('name') === m.has('module')) {
      r.report(node, path, 'give exactly one of `name` (a built-in strategy) or `module` (a file)');
      return undefined;
    }
    if (m.has('name')) factory = builtin(m.get('name')!.value, join(path, 'name'));
    else factory = await importStrategy(r, m.get('module')!.value, join(path, 'module'), configPath);
    if (!factory) return undefined;
    if (m.has('module')) label = String(r.data(m.get('module')!.value));
    const optionsPair = m.get('options');
    if (optionsPair) {
      optionsNode = optionsPair.value;
      const o = r.map(optionsNode, join(path, 'options'), null);
      if (!o) return undefined;
      options = r.data(optionsNode) as Record<string, unknown>;
    }
  }
  if (!factory) return undefined;
  try {
    factory(trialEnv(options)).candidates({ limit: 1 });
  } catch (err) {
    // StrategyOptionsError, or any error carrying the option's `path`
    // (a user's module need not import Drover to report a bad option).
    const optionPath = err instanceof StrategyOptionsError ? err.path : (err as { path?: unknown })?.path;
    if (typeof optionPath === 'string' && optionPath !== '') {
      const first = optionPath.split('.')[0];
      const keyNode = isMap(optionsNode) ? optionsNode.items.find((p) => isScalar(p.key) && p.key.value === first)?.key : undefined;
      const message = String((err as Error | null)?.message ?? err);
      const text = message.startsWith(`${optionPath}: `) ? message.slice(optionPath.length + 2) : message;
      r.report((keyNode as Node | undefined) ?? optionsNode, join(join(path, 'options'), optionPath), text);
    } else {
      r.report(node, path, `strategy "${label}" failed to build: ${(err as Error | null)?.message ?? String(err)}`);
    }
    return undefined;
  }
  return { label, factory, options };
}

async function importStrategy(r: Reader, node: MaybeNode, path: string, configPath: string): Promise<StrategyFactory | undefined> {
  const spec = r.string(node, path);
  if (spec === undefined) return undefined;
  const file = resolve(dirname(configPath), spec);
  let mod: { create?: unknown; default?: unknown };
  try {
    mod = (await import(pathToFileURL(file).href)) as typeof mod;
  } catch (err) {
    r.report(node, path, `cannot load strategy module ${file}: ${(err as Error | null)?.message ?? String(err)}`);
    return undefined;
  }
  const factory = typeof mod.create === 'function' ? mod.create : mod.default;
  if (typeof factory !== 'function') {
    r.report(node, path, `${file} must export a factory function as \`create\` or as its default export`);
    return undefined;
  }
  return factory as StrategyFactory;
}

/** An empty environment: building a strategy in it checks its options and shape. */
function trialEnv(options: Record<string, unknown>): StrategyEnv {
  return {
    backends: Object.freeze([]),
    state: {
      usable: () => true,
      active: () => 0,
      weight: (b) => b.weight,
      ramp: () => 1,
      latency: () => undefined,
      report: () => undefined,
    },
    options,
    random: Math.random,
    now: Date.now,
    keep: (_key, init) => init(),
  };
}

/** Reads an optional key with `read`, or returns `fallback` when it is absent. */
function optional<T>(node: MaybeNode | undefined, fallback: T, read: (n: MaybeNode) => T | undefined): T | undefined {
  return node === undefined ? fallback : read(node);
}
