#!/usr/bin/env -S node --max-semi-space-size=2
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { loadConfig } from './config/load.js';
import type { DroverConfig, RouteMatch } from './config/schema.js';
import { Drover } from './drover.js';
import { ConfigInvalidError, DroverError, UsageError } from './errors.js';
import { Logger } from './log.js';
import { AGENT_HELP, parseAgentArgs, runAgent } from './health/agent-server.js';
import { parseRegisterArgs, REGISTER_HELP, runRegister } from './registry/command.js';

const HELP = `Usage: drover [start] --config FILE     run the proxy
       drover check --config FILE       validate FILE and summarise it
       drover register --zookeeper CONNECT --path ZNODE --address HOST:PORT
              [--weight N] [--format F] [--check URL] [--interval D]
              [--report-load [--load-interval D]]
                                        keep HOST:PORT registered in ZooKeeper
       drover agent --listen HOST:PORT [--weight N]
                                        answer HAProxy agent checks with this
                                        host's spare capacity (N%)
       drover --help | --version

Options:
  -c, --config FILE   the YAML config (see README: every key and its default)
  -h, --help          this text
  -v, --version       the version

${REGISTER_HELP}

${AGENT_HELP}

Signals: SIGTERM or SIGINT stops accepting, lets open connections finish for
up to drainTimeout, then exits 0; a second signal closes them at once.
SIGHUP re-reads the config: an invalid one is logged and the old one kept.
drover register removes its znode on SIGTERM or SIGINT, then exits 0; so
does drover agent after closing its port.`;

/** Runs the `drover` command with `argv` (without node and script); resolves to the exit code. */
async function main(argv: string[]): Promise<number> {
  if (argv[0] === 'register') return registerCommand(argv.slice(1));
  if (argv[0] === 'agent') return agentCommand(argv.slice(1));
  let args;
  try {
    args = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        config: { type: 'string', short: 'c' },
        help: { type: 'boolean', short: 'h' },
        version: { type: 'boolean', short: 'v' },
      },
    });
  } catch (err) {
    return usage((err as Error).message);
  }
  const { values, positionals } = args;
  if (values.help) {
    process.stdout.write(HELP + '\n');
    return 0;
  }
  if (values.version) {
    process.stdout.write(version() + '\n');
    return 0;
  }
  const command = positionals[0] ?? 'start';
  if (positionals.length > 1 || !['start', 'check'].includes(command)) {
    return usage(`unknown command: ${positionals.join(' ')}`);
  }
  if (!values.config) return usage('--config FILE is required');

  let config: DroverConfig;
  try {
    config = await loadConfig(values.config);
  } catch (err) {
    if (err instanceof ConfigInvalidError) {
      for (const line of err.message.split('\n')) process.stderr.write(line + '\n');
      process.stderr.write(`${err.code}: ${err.problems.length} problem(s) in ${values.config}\n`);
      return 1;
    }
    if (err instanceof DroverError) {
      process.stderr.write(`${err.code}: ${err.message}\n`);
      return 1;
    }
    throw err;
  }
  if (command === 'check') {
    process.stdout.write(summary(config));
    return 0;
  }
  return run(config);
}

async function registerCommand(argv: string[]): Promise<number> {
  let command;
  try {
    command = parseRegisterArgs(argv);
  } catch (err) {
    if (err instanceof UsageError) return usage(err.message);
    throw err;
  }
  if (command === 'help') {
    process.stdout.write(HELP + '\n');
    return 0;
  }
  return runRegister(command);
}

async function agentCommand(argv: string[]): Promise<number> {
  let command;
  try {
    command = parseAgentArgs(argv);
  } catch (err) {
    if (err instanceof UsageError) return usage(err.message);
    throw err;
  }
  if (command === 'help') {
    process.stdout.write(HELP + '\n');
    return 0;
  }
  return runAgent(command);
}

async function run(config: DroverConfig): Promise<number> {
  const log = new Logger(config.logLevel);
  // Handlers go in before binding: a signal during start-up must still drain
  // and exit 0, not kill the process mid-start.
  let drover: Drover | undefined;
  let signalled: NodeJS.Signals | undefined;
  let stop: (() => void) | undefined;
  const onSignal = (signal: NodeJS.Signals) => {
    if (signalled) {
      log.info('second signal: closing open connections now', { signal });
      drover?.destroyConnections();
      return;
    }
    signalled = signal;
    log.info('signal received: draining', { signal });
    stop?.();
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  // Installed early too: SIGHUP's default action would kill a starting proxy.
  // reloadFile() queues: reloads run in signal order, each reading the file
  // when its turn comes, so the last SIGHUP applies the newest file.
  process.on('SIGHUP', () => {
    if (signalled) return log.warn('SIGHUP ignored: stopping');
    if (!drover) return log.warn('SIGHUP ignored: still starting');
    void drover.reloadFile();
  });
  try {
    drover = await Drover.start(config, { log });
  } catch (err) {
    log.error('start failed', { error: err });
    return 1;
  }
  const running = drover;
  log.info('drover started', { version: version(), config: config.file, pid: process.pid });
  return new Promise<number>((resolve) => {
    stop = () =>
      running.stop().then(
        () => resolve(0),
        (err: unknown) => {
          log.error('stop failed', { error: err });
          resolve(1);
        },
      );
    if (signalled) stop();
  });
}

/** A one-screen description of a valid config, for `drover check`. */
function summary(config: DroverConfig): string {
  const lines = [`config ok: ${config.file}`, '', 'listeners:'];
  for (const l of config.listeners) {
    const extras = [`maxConnections ${l.maxConnections}`];
    if (l.mode === 'tcp') {
      if (l.proxyProtocol !== 'off') extras.push(`proxyProtocol ${l.proxyProtocol}`);
      lines.push(`  ${l.name}  tcp  ${l.bind.id} -> ${l.service}  (${extras.join(', ')})`);
      continue;
    }
    lines.push(`  ${l.name}  http  ${l.bind.id}  (engine ${l.engine}, ${extras.join(', ')})`);
    for (const r of l.routes) lines.push(`    ${describeMatch(r.match)} -> ${r.service}`);
  }
  lines.push('', 'services:');
  for (const s of config.services.values()) {
    const members = s.static.map((m) => (m.weight === 1 ? `${m.host}:${m.port}` : `${m.host}:${m.port} w${m.weight}`));
    lines.push(
      `  ${s.name}  strategy ${s.strategy.label}, retries ${s.retries}, connect ${ms(s.timeouts.connect)}, idle ${ms(s.timeouts.idle)}`,
      s.zookeeper
        ? `    zookeeper ${s.zookeeper.path} (format ${s.zookeeper.format}${s.zookeeper.endpoint ? `, endpoint ${s.zookeeper.endpoint}` : ''})`
        : `    static (${members.length}): ${members.join(', ') || 'none'}`,
    );
    const hc = s.healthCheck;
    if (hc) {
      const what = hc.type === 'http' ? `http GET ${hc.path}` : 'tcp';
      lines.push(`    health ${what} every ${ms(hc.interval)}, rise ${hc.rise} fall ${hc.fall}${hc.shared ? ', shared' : ''}${hc.startUnhealthy ? ', start unhealthy' : ''}`);
    }
    const extras = [
      s.outlier ? `outlier ${s.outlier.consecutiveFailures} failures, ejection ${ms(s.outlier.baseEjection)}` : '',
      s.agent ? `agent port ${s.agent.port ?? 'per member'} every ${ms(s.agent.interval)}` : '',
      s.slowStart ? `slow start ${ms(s.slowStart)}` : '',
      s.panicThreshold ? `panic below ${s.panicThreshold}%` : '',
    ].filter(Boolean);
    if (extras.length) lines.push(`    ${extras.join(', ')}`);
  }
  if (config.zookeeper) lines.push('', `zookeeper ${config.zookeeper.connect}, session timeout ${ms(config.zookeeper.sessionTimeout)}${config.zookeeper.auth.length ? `, ${config.zookeeper.auth.length} auth` : ''}`);
  lines.push('', `drainTimeout ${ms(config.drainTimeout)}, logLevel ${config.logLevel}`, '');
  return lines.join('\n');
}

function describeMatch(m: RouteMatch): string {
  const parts = [
    m.host && `host ${m.host}`,
    m.pathPrefix && `path ${m.pathPrefix}*`,
    m.methods && `method ${m.methods.join('|')}`,
    ...Object.entries(m.headers ?? {}).map(([k, v]) => `${k}: ${v}`),
  ].filter(Boolean);
  return parts.length ? parts.join(', ') : 'default';
}

function ms(n: number): string {
  if (n % 3_600_000 === 0) return `${n / 3_600_000}h`;
  if (n % 60_000 === 0) return `${n / 60_000}m`;
  if (n % 1000 === 0) return `${n / 1000}s`;
  return `${n}ms`;
}

function usage(message: string): number {
  const err = new UsageError(message);
  process.stderr.write(`${err.code}: ${err.message}\n\n${HELP}\n`);
  return 2;
}

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

main(process.argv.slice(2)).then(
  // Exit explicitly: a drained proxy must not linger on a stray timer.
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`drover: unexpected error: ${(err as Error).stack ?? err}\n`);
    process.exit(1);
  },
);
