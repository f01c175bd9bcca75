/**
 * `drover register`: keeps HOST:PORT registered in ZooKeeper while an optional
 * HTTP health check passes, and removes the node on SIGTERM/SIGINT. With
 * `--report-load` it also writes the host's utilization into the node's
 * `load` field every `--load-interval`.
 */
import http from 'node:http';
import https from 'node:https';
import { parseArgs } from 'node:util';
import { parseDuration } from '../../strategies/index.js';
import { parseAddress } from '../config/address.js';
import { zkPathProblem } from '../config/zookeeper.js';
import { UsageError } from '../errors.js';
import { HostMeter, hostLoad } from '../health/agent-server.js';
import { Logger } from '../log.js';
import { register, REGISTRATION_FORMATS, type Registration, type RegistrationFormat } from './register.js';

/** The register options of `drover --help`. */
export const REGISTER_HELP = `Register options:
  --zookeeper CONNECT  host:port[,host:port...][/chroot]
  --path ZNODE         the service's parent znode, e.g. /services/web (created when missing)
  --address HOST:PORT  this instance, as clients should reach it
  --weight N           0-1000, default 1 (drover format only)
  --format F           drover (default), curator or plain
  --check URL          GET URL every interval: a status of 200-399 keeps the node,
                       anything else (or no answer within the interval) removes it
                       until the check passes again
  --interval D         check interval and timeout, e.g. 500ms or 2s; default 2s
  --report-load        write this host's utilization (0-1, 2 decimals: 1 minus
                       the spare capacity drover agent reports) into the node's
                       "load" field, which the agent-load strategy follows
                       (drover format only)
  --load-interval D    how often to write it; default 5s (keep it well under
                       the agent-load strategy's maxAge, 30s by default)`;

export interface RegisterCommand {
  readonly zookeeper: string;
  readonly path: string;
  readonly address: string;
  readonly weight: number | undefined;
  readonly format: RegistrationFormat;
  readonly check: URL | undefined;
  readonly interval: number;
  /** With `--report-load`: how often the host's load is written (ms); absent otherwise. */
  readonly loadInterval?: number;
}

const DEFAULT_INTERVAL_MS = 2000;
const DEFAULT_LOAD_INTERVAL_MS = 5000;
const MIN_INTERVAL_MS = 100;

/** Parses the arguments after `register`; 'help' for --help. Throws UsageError. */
export function parseRegisterArgs(argv: string[]): RegisterCommand | 'help' {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        zookeeper: { type: 'string' },
        path: { type: 'string' },
        address: { type: 'string' },
        weight: { type: 'string' },
        format: { type: 'string' },
        check: { type: 'string' },
        interval: { type: 'string' },
        'report-load': { type: 'boolean' },
        'load-interval': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (err) {
    throw new UsageError(`register: ${(err as Error).message}`);
  }
  if (values.help) return 'help';
  for (const key of ['zookeeper', 'path', 'address'] as const) {
    if (!values[key]) throw new UsageError(`register: --${key} is required`);
  }
  const address = parseAddress(values.address!);
  if (typeof address === 'string') throw new UsageError(`register: --address: ${address}`);
  const pathProblem = zkPathProblem(values.path!) ?? (values.path === '/' ? 'must name the service znode, not /' : undefined);
  if (pathProblem) throw new UsageError(`register: --path ${values.path}: ${pathProblem}`);
  const format = (values.format ?? 'drover') as RegistrationFormat;
  if (!REGISTRATION_FORMATS.includes(format)) throw new UsageError(`register: --format must be one of ${REGISTRATION_FORMATS.join(', ')}`);
  let weight: number | undefined;
  if (values.weight !== undefined) {
    if (format !== 'drover') throw new UsageError(`register: --weight needs --format drover (the ${format} format has no weight)`);
    weight = /^\d{1,4}$/.test(values.weight) ? Number(values.weight) : NaN;
    if (!(weight <= 1000)) throw new UsageError(`register: --weight must be a whole number 0-1000, got "${values.weight}"`);
  }
  let check: URL | undefined;
  if (values.check !== undefined) {
    check = URL.canParse(values.check) ? new URL(values.check) : undefined;
    if (!check || (check.protocol !== 'http:' && check.protocol !== 'https:')) {
      throw new UsageError(`register: --check must be an http:// or https:// URL, got "${values.check}"`);
    }
  }
  let interval = DEFAULT_INTERVAL_MS;
  if (values.interval !== undefined) {
    if (!check) throw new UsageError('register: --interval needs --check');
    const ms = parseDuration(values.interval);
    if (ms === undefined || ms < MIN_INTERVAL_MS) throw new UsageError(`register: --interval must be a duration of at least ${MIN_INTERVAL_MS}ms, got "${values.interval}"`);
    interval = ms;
  }
  let loadInterval: number | undefined;
  if (values['report-load']) {
    if (format !== 'drover') throw new UsageError(`register: --report-load needs --format drover (the ${format} format has no load field)`);
    loadInterval = DEFAULT_LOAD_INTERVAL_MS;
  }
  if (values['load-interval'] !== undefined) {
    if (loadInterval === undefined) throw new UsageError('register: --load-interval needs --report-load');
    const ms = parseDuration(values['load-interval']);
    if (ms === undefined || ms < MIN_INTERVAL_MS) {
      throw new UsageError(`register: --load-interval must be a duration of at least ${MIN_INTERVAL_MS}ms, got "${values['load-interval']}"`);
    }
    loadInterval = ms;
  }
  return {
    zookeeper: values.zookeeper!,
    path: values.path!,
    address: address.id,
    weight,
    format,
    check,
    interval,
    ...(loadInterval !== undefined ? { loadInterval } : {}),
  };
}

/**
 * Runs `drover register` until SIGTERM or SIGINT; resolves to the exit code.
 * The first check runs before registering, so a failing service never appears.
 */
export async function runRegister(cmd: RegisterCommand, log = new Logger()): Promise<number> {
  const abort = new AbortController();
  let signalled: NodeJS.Signals | undefined;
  let registration: Registration | undefined;
  let timer: NodeJS.Timeout | undefined;
  let loadTimer: NodeJS.Timeout | undefined;
  let onStop = () => {};
  let onForce = () => {};
  const stopped = new Promise<void>((resolve) => (onStop = resolve));
  const forced = new Promise<void>((resolve) => (onForce = resolve));
  const onSignal = (signal: NodeJS.Signals) => {
    if (signalled) {
      log.warn('second signal: exiting without waiting for ZooKeeper; the node goes when the session ends', { signal });
      registration?.connection.close();
      onForce();
      return;
    }
    signalled = signal;
    log.info('signal received: deregistering', { signal });
    clearTimeout(timer);
    clearTimeout(loadTimer);
    abort.abort();
    onStop();
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);

  const fields = { address: cmd.address, path: cmd.path, zookeeper: cmd.zookeeper };
  let healthy = true;
  if (cmd.check) {
    const first = await probe(cmd.check, cmd.interval);
    healthy = first.ok;
    if (!healthy) log.warn('check failed: not registering until it passes', { url: cmd.check.href, ...first.detail });
  }
  if (signalled) return 0;
  // Loads written before its first CPU sample (1 s) come from the load average alone.
  const meter = cmd.loadInterval !== undefined ? new HostMeter().start() : undefined;
  try {
    registration = await register({
      zookeeper: { connect: cmd.zookeeper },
      path: cmd.path,
      address: cmd.address,
      weight: cmd.weight,
      format: cmd.format,
      log,
      // With --report-load the node is created only once it can hold a load (below).
      paused: !healthy || meter !== undefined,
      signal: abort.signal,
    });
  } catch (err) {
    meter?.stop();
    if (signalled) return 0;
    log.error('register failed', { ...fields, error: err });
    return 1;
  }
  const reg = registration;
  log.info('drover register running', {
    ...fields,
    format: cmd.format,
    check: cmd.check?.href,
    ...(cmd.loadInterval !== undefined ? { loadInterval: cmd.loadInterval } : {}),
    pid: process.pid,
  });

  if (meter && cmd.loadInterval !== undefined) {
    const every = cmd.loadInterval;
    let writing = false;
    // Written every interval even when unchanged: each write refreshes the
    // report in every Drover, whose agent-load strategy forgets old ones.
    const report = () => {
      if (signalled) return;
      if (!writing) {
        writing = true;
        const load = hostLoad(meter.capacity());
        reg.setData({ load }).then(
          () => log.debug('load written', { load }),
          (err: unknown) => log.error('load write failed', { error: err }),
        ).finally(() => (writing = false));
      }
      loadTimer = setTimeout(report, every);
    };
    // The node was left paused: its first version already holds a load, so
    // no Drover sees this member without one. setData resolves at once while paused.
    await reg.setData({ load: hostLoad(meter.capacity()) }).catch((err: unknown) => log.error('load write failed', { error: err }));
    // Not awaited, as in the check loop: a ZooKeeper outage must not block a signal.
    if (healthy && !signalled) reg.resume().catch((err: unknown) => log.error('resume failed', { error: err }));
    loadTimer = setTimeout(report, every);
  }

  if (cmd.check) {
    const url = cmd.check;
    const tick = async () => {
      const started = Date.now();
      const result = await probe(url, cmd.interval);
      if (signalled) return;
      if (result.ok !== healthy) {
        healthy = result.ok;
        // Not awaited: the registration applies the latest request, and a
        // ZooKeeper outage must not stop the checks.
        if (healthy) {
          log.info('check passed: registering again', { url: url.href, ...result.detail });
          reg.resume().catch((err: unknown) => log.error('resume failed', { error: err }));
        } else {
          log.warn('check failed: deregistering', { url: url.href, ...result.detail });
          reg.pause().catch((err: unknown) => log.error('pause failed', { error: err }));
        }
      }
      timer = setTimeout(() => void tick(), Math.max(0, started + cmd.interval - Date.now()));
    };
    timer = setTimeout(() => void tick(), cmd.interval);
  }

  await stopped;
  meter?.stop();
  await Promise.race([reg.close(), forced]);
  log.info('stopped', fields);
  return 0;
}

/** One GET of `url`: passes on a 200-399 status within `timeoutMs`. */
function probe(url: URL, timeoutMs: number): Promise<{ ok: boolean; detail: { status?: number; error?: string } }> {
  return new Promise((resolve) => {
    let done = false;
    const finish = (ok: boolean, detail: { status?: number; error?: string }) => {
      if (done) return;
      done = true;
      clearTimeout(deadline);
      resolve({ ok, detail });
    };
    const get = url.protocol === 'https:' ? https.get : http.get;
    let req: http.ClientRequest;
    try {
      req = get(url, { agent: false, headers: { 'user-agent': 'drover-register' } }, (res) => {
        const status = res.statusCode ?? 0;
        finish(status >= 200 && status < 400, { status });
        // Only the status matters: do not wait for the body.
        res.destroy();
      });
    } catch (err) {
      return resolve({ ok: false, detail: { error: (err as Error).message } });
    }
    req.on('error', (err) => finish(false, { error: err.message }));
    const deadline = setTimeout(() => req.destroy(new Error(`no response within ${timeoutMs} ms`)), timeoutMs);
  });
}
