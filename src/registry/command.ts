/**
 * `drover register`: keeps HOST:PORT registered in ZooKeeper while an optional
 * HTTP health check passes, and removes the node on SIGTERM/SIGINT.
 */
import http from 'node:http';
import https from 'node:https';
import { parseArgs } from 'node:util';
import { parseDuration } from '../../strategies/index.js';
import { parseAddress } from '../config/address.js';
import { zkPathProblem } from '../config/zookeeper.js';
import { UsageError } from '../errors.js';
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
  --interval D         check interval and timeout, e.g. 500ms or 2s; default 2s`;

export interface RegisterCommand {
  readonly zookeeper: string;
  readonly path: string;
  readonly address: string;
  readonly weight: number | undefined;
  readonly format: RegistrationFormat;
  readonly check: URL | undefined;
  readonly interval: number;
}

const DEFAULT_INTERVAL_MS = 2000;
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
  return { zookeeper: values.zookeeper!, path: values.path!, address: address.id, weight, format, check, interval };
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
  try {
    registration = await register({
      zookeeper: { connect: cmd.zookeeper },
      path: cmd.path,
      address: cmd.address,
      weight: cmd.weight,
      format: cmd.format,
      log,
      paused: !healthy,
      signal: abort.signal,
    });
  } catch (err) {
    if (signalled) return 0;
    log.error('register failed', { ...fields, error: err });
    return 1;
  }
  const reg = registration;
  log.info('drover register running', { ...fields, format: cmd.format, check: cmd.check?.href, pid: process.pid });

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
