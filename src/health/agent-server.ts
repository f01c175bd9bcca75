/**
 * `drover agent`: a tiny HAProxy agent-check server that reports how busy the
 * host it runs on is. Each connection gets one line, `N%\n`, and is closed;
 * whatever the client sends (HAProxy's `agent-send`, Drover's `agent.send`)
 * is read and ignored. Also the host measurement behind `drover register
 * --report-load`.
 */
import { createServer, type Socket } from 'node:net';
import os from 'node:os';
import { parseArgs } from 'node:util';
import { formatAddress, parseAddress, type Address } from '../config/address.js';
import { UsageError } from '../errors.js';
import { Logger } from '../log.js';

/** The agent options of `drover --help`. */
export const AGENT_HELP = `Agent options:
  --listen HOST:PORT   where to answer agent checks (port 0 picks a free one)
  --weight N           1-1000, default 100: each check is answered with N% of the
                       configured weight, scaled by the host's spare capacity
                       (CPU idle share and 1-minute load average per CPU), never
                       below 1%`;

/** Default `--weight`: a reply of 100% means "my full configured weight". */
export const DEFAULT_AGENT_WEIGHT = 100;
/** How often CPU times are sampled. */
export const SAMPLE_MS = 1000;
/** An agent connection the client leaves open is closed after this long. */
const SOCKET_TIMEOUT_MS = 5000;

/** Summed CPU times of all cores, in ms. */
export interface CpuTimes {
  readonly idle: number;
  readonly total: number;
}

/** Sums `os.cpus()`-shaped times over every core. */
export function cpuTimes(cpus: readonly os.CpuInfo[]): CpuTimes {
  let idle = 0;
  let total = 0;
  for (const { times } of cpus) {
    idle += times.idle;
    total += times.user + times.nice + times.sys + times.idle + times.irq;
  }
  return { idle, total };
}

/** The idle share (0-1) between two samples; undefined when no time passed between them. */
export function idleShare(before: CpuTimes, after: CpuTimes): number | undefined {
  const total = after.total - before.total;
  if (!(total > 0)) return undefined;
  return clamp01((after.idle - before.idle) / total);
}

/** What the host's spare capacity is computed from. */
export interface HostSample {
  /** CPU idle share (0-1) over the last sample period; absent before the first period ends. */
  readonly idle?: number;
  /** The 1-minute load average. */
  readonly load1: number;
  /** The host's CPU count (`os.cpus().length`): the load average counts the whole host, so it is divided by all its CPUs, not by this process's affinity. */
  readonly parallelism: number;
}

/**
 * The host's spare capacity, 0 (saturated) to 1 (idle): the smaller of the
 * CPU idle share and 1 − load1 / parallelism (at least 0). The load average
 * also counts runnable tasks waiting for a CPU, which the idle share cannot
 * see. Without an idle share yet, the load average alone decides; an
 * unreadable load average (not finite) counts as no load.
 */
export function hostCapacity(s: HostSample): number {
  const byLoad = Number.isFinite(s.load1) && s.parallelism > 0 ? clamp01(1 - s.load1 / s.parallelism) : 1;
  const idle = s.idle === undefined || !Number.isFinite(s.idle) ? 1 : clamp01(s.idle);
  return Math.min(idle, byLoad);
}

/**
 * The percent an agent reports: round(weight × capacity), never below 1. An
 * overloaded host still gets a trickle of new traffic rather than none: a
 * reply of 0% would take every member of a uniformly busy fleet out at once,
 * and the agent is no health check (an unhealthy backend should fail its
 * checks, or answer `down`).
 */
export function agentPercent(weight: number, capacity: number): number {
  return Math.max(1, Math.round(weight * clamp01(capacity)));
}

/** The utilization `drover register --report-load` writes: 1 − capacity, to 2 decimals. */
export function hostLoad(capacity: number): number {
  return Math.round((1 - clamp01(capacity)) * 100) / 100;
}

/** Where HostMeter reads the host; os by default, injectable for tests. */
export interface HostProbe {
  cpus(): readonly os.CpuInfo[];
  loadavg(): readonly number[];
  parallelism(): number;
}

const OS_PROBE: HostProbe = {
  cpus: () => os.cpus(),
  loadavg: () => os.loadavg(),
  parallelism: () => os.cpus().length || 1,
};

/**
 * Samples the host's CPU times every `sampleMs` on an unref'd timer (it never
 * keeps a process alive) and answers with the latest capacity.
 */
export class HostMeter {
  private last: CpuTimes | undefined;
  private idle: number | undefined;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly probe: HostProbe = OS_PROBE,
    private readonly sampleMs = SAMPLE_MS,
  ) {}

  /** Takes the first sample and starts the timer; idempotent. */
  start(): this {
    if (this.timer) return this;
    this.last = this.read();
    this.timer = setInterval(() => this.tick(), this.sampleMs);
    this.timer.unref();
    return this;
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Takes one sample now (the timer calls this). */
  tick(): void {
    const now = this.read();
    if (this.last && now) {
      const share = idleShare(this.last, now);
      if (share !== undefined) this.idle = share;
    }
    if (now) this.last = now;
  }

  /** What the capacity is computed from right now. */
  sample(): HostSample {
    let load1 = NaN;
    let parallelism = 1;
    try {
      load1 = Number(this.probe.loadavg()[0]);
      parallelism = this.probe.parallelism();
    } catch {
      /* unreadable: counts as no load */
    }
    return { ...(this.idle !== undefined ? { idle: this.idle } : {}), load1, parallelism };
  }

  /** The host's spare capacity now, 0-1 ({@link hostCapacity}). */
  capacity(): number {
    return hostCapacity(this.sample());
  }

  private read(): CpuTimes | undefined {
    try {
      return cpuTimes(this.probe.cpus());
    } catch {
      return undefined;
    }
  }
}

/** What `drover agent` was asked to do. */
export interface AgentCommand {
  readonly listen: Address;
  readonly weight: number;
}

/** Parses the arguments after `agent`; 'help' for --help. Throws UsageError. */
export function parseAgentArgs(argv: string[]): AgentCommand | 'help' {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        listen: { type: 'string' },
        weight: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (err) {
    throw new UsageError(`agent: ${(err as Error).message}`);
  }
  if (values.help) return 'help';
  if (!values.listen) throw new UsageError('agent: --listen HOST:PORT is required');
  const listen = parseAddress(values.listen, true);
  if (typeof listen === 'string') throw new UsageError(`agent: --listen: ${listen}`);
  let weight = DEFAULT_AGENT_WEIGHT;
  if (values.weight !== undefined) {
    weight = /^\d{1,4}$/.test(values.weight) ? Number(values.weight) : NaN;
    if (!(weight >= 1 && weight <= 1000)) throw new UsageError(`agent: --weight must be a whole number 1-1000, got "${values.weight}"`);
  }
  return { listen, weight };
}

/** A running agent server. */
export interface AgentServer {
  /** The bound `host:port`. */
  readonly address: string;
  /** Stops accepting and closes open connections. */
  close(): Promise<void>;
}

/** Starts answering agent checks on `listen`; rejects when it cannot bind. */
export async function startAgentServer(options: {
  readonly listen: Address;
  readonly weight: number;
  /** Default: a started HostMeter. */
  readonly capacity?: () => number;
  readonly log?: Logger;
}): Promise<AgentServer> {
  const meter = options.capacity ? undefined : new HostMeter().start();
  const capacity = options.capacity ?? (() => meter!.capacity());
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    socket.setTimeout(SOCKET_TIMEOUT_MS, () => socket.destroy());
    // Read and drop what the client sends: unread bytes at close would reset the connection.
    socket.resume();
    let percent: number;
    try {
      percent = agentPercent(options.weight, capacity());
    } catch (err) {
      options.log?.warn('agent could not measure the host: answering with the full weight', { error: err });
      percent = options.weight;
    }
    socket.end(`${percent}%\n`);
  });
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(options.listen.port, options.listen.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (err) {
    meter?.stop();
    throw err;
  }
  server.on('error', (err) => options.log?.error('agent server error', { error: err }));
  const bound = server.address();
  const address = typeof bound === 'object' && bound ? formatAddress(bound.address, bound.port) : options.listen.id;
  return {
    address,
    close: () =>
      new Promise<void>((resolve) => {
        meter?.stop();
        server.close(() => resolve());
        for (const s of sockets) s.destroy();
      }),
  };
}

/** Runs `drover agent` until SIGTERM or SIGINT; resolves to the exit code. */
export async function runAgent(cmd: AgentCommand, log = new Logger()): Promise<number> {
  let server: AgentServer;
  try {
    server = await startAgentServer({ listen: cmd.listen, weight: cmd.weight, log });
  } catch (err) {
    log.error('agent failed to listen', { listen: cmd.listen.id, error: err });
    return 1;
  }
  log.info('drover agent running', { listen: server.address, weight: cmd.weight, pid: process.pid });
  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    process.once('SIGTERM', resolve);
    process.once('SIGINT', resolve);
  });
  log.info('signal received: stopping', { signal });
  await server.close();
  log.info('stopped', { listen: server.address });
  return 0;
}

function clamp01(n: number): number {
  return Number.isFinite(n) ? Math.min(1, Math.max(0, n)) : 0;
}
