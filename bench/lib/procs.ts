/**
 * Child processes for the benchmark: every proxy, backend and peer runs in a
 * process of its own, so its CPU time and memory can be read from /proc and
 * it never shares an event loop with the load generator. Each process is
 * tracked by pid and stopped by pid (never by name); whatever is still
 * running when the bench process exits is killed then.
 */
import { fork, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { connect, createServer, type Server } from 'node:net';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The compiled bench folder (dist/bench). */
export const BENCH_DIST = fileURLToPath(new URL('../', import.meta.url));
/** The repository root, from dist/bench/lib/. */
export const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

const live = new Set<ChildProcess>();
let hookInstalled = false;
function installExitHook(): void {
  if (hookInstalled) return;
  hookInstalled = true;
  process.once('exit', () => {
    for (const child of live) {
      if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) {
        try {
          process.kill(child.pid, 'SIGKILL');
        } catch {
          /* gone */
        }
      }
    }
  });
}

/** A child process the bench started: its pid, IPC helpers and stop(). */
export class Child {
  private readonly waiters: Array<{ type: string; resolve: (m: Record<string, unknown>) => void }> = [];
  private readonly seen: Record<string, unknown>[] = [];
  private readonly exited: Promise<void>;
  /** The last lines the child wrote on stderr (quoted when it fails). */
  readonly stderrTail: string[] = [];

  constructor(
    readonly name: string,
    readonly proc: ChildProcess,
  ) {
    installExitHook();
    live.add(proc);
    this.exited = new Promise((resolve) => {
      proc.once('exit', () => {
        live.delete(proc);
        resolve();
      });
      proc.once('error', () => {
        live.delete(proc);
        resolve();
      });
    });
    proc.on('message', (m: Record<string, unknown>) => {
      const i = this.waiters.findIndex((w) => w.type === m.type);
      if (i >= 0) this.waiters.splice(i, 1)[0]!.resolve(m);
      else this.seen.push(m);
    });
    proc.stderr?.on('data', (chunk: Buffer) => {
      for (const line of chunk.toString('utf8').split('\n')) {
        if (!line.trim()) continue;
        this.stderrTail.push(line);
        if (this.stderrTail.length > 20) this.stderrTail.shift();
      }
    });
  }

  /** The child's pid. */
  get pid(): number {
    return this.proc.pid ?? 0;
  }

  /** Whether the process is still running. */
  get running(): boolean {
    return this.proc.exitCode === null && this.proc.signalCode === null;
  }

  /** Resolves with the next IPC message of `type`; rejects if the child exits first or after `timeoutMs`. */
  next(type: string, timeoutMs = 30_000): Promise<Record<string, unknown>> {
    const i = this.seen.findIndex((m) => m.type === type);
    if (i >= 0) return Promise.resolve(this.seen.splice(i, 1)[0]!);
    return new Promise((resolve, reject) => {
      const waiter = { type, resolve: (m: Record<string, unknown>) => (clearTimeout(timer), resolve(m)) };
      const timer = setTimeout(() => {
        const at = this.waiters.indexOf(waiter);
        if (at >= 0) this.waiters.splice(at, 1);
        reject(new Error(`${this.name}: no '${type}' message within ${timeoutMs} ms${this.tail()}`));
      }, timeoutMs);
      this.waiters.push(waiter);
      void this.exited.then(() => {
        const at = this.waiters.indexOf(waiter);
        if (at < 0) return;
        this.waiters.splice(at, 1);
        clearTimeout(timer);
        reject(new Error(`${this.name} exited (${this.proc.exitCode ?? this.proc.signalCode}) before '${type}'${this.tail()}`));
      });
    });
  }

  /** Sends `msg` and resolves with the reply of type `reply` (default: msg.type). */
  async ask(msg: Record<string, unknown>, reply = String(msg.type), timeoutMs = 30_000): Promise<Record<string, unknown>> {
    const answer = this.next(reply, timeoutMs);
    this.proc.send?.(msg);
    return answer;
  }

  /** Sends a signal (SIGTERM by default) by pid, then SIGKILL after `graceMs`; resolves once it exited. */
  async stop(signal: NodeJS.Signals = 'SIGTERM', graceMs = 3000): Promise<void> {
    if (!this.running) return;
    try {
      process.kill(this.pid, signal);
    } catch {
      /* gone */
    }
    const timer = setTimeout(() => {
      try {
        process.kill(this.pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }, graceMs);
    await this.exited;
    clearTimeout(timer);
  }

  /** Resolves when the process exits. */
  get done(): Promise<void> {
    return this.exited;
  }

  private tail(): string {
    return this.stderrTail.length ? `\n  ${this.stderrTail.join('\n  ')}` : '';
  }
}

/** Forks a compiled bench child script (path relative to dist/bench) with IPC; stderr is captured, stdout ignored. */
export function forkChild(name: string, script: string, args: string[] = [], execArgv: string[] = []): Child {
  const child = fork(join(BENCH_DIST, script), args, { stdio: ['ignore', 'ignore', 'pipe', 'ipc'], execArgv });
  return new Child(name, child);
}

/** Spawns an executable (HAProxy, nginx) with IPC-less stdio; stderr captured. */
export function spawnChild(name: string, command: string, args: string[], cwd?: string): Child {
  const child = spawn(command, args, { stdio: ['ignore', 'ignore', 'pipe'], ...(cwd ? { cwd } : {}) });
  return new Child(name, child);
}

/** `count` distinct ports on 127.0.0.1 that were free a moment ago. */
export async function freePorts(count: number): Promise<number[]> {
  const servers: Server[] = [];
  try {
    for (let i = 0; i < count; i++) {
      const s = createServer();
      servers.push(s);
      s.listen(0, '127.0.0.1');
      await once(s, 'listening');
    }
    return servers.map((s) => (s.address() as { port: number }).port);
  } finally {
    await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  }
}

/** Polls until a TCP connect to 127.0.0.1:port succeeds (a spawned server is up). */
export async function waitForPort(port: number, child: Child, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (!child.running) throw new Error(`${child.name} exited before it listened on ${port}:\n  ${child.stderrTail.join('\n  ')}`);
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect({ host: '127.0.0.1', port });
      s.once('connect', () => (s.destroy(), resolve(true)));
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`${child.name}: nothing listens on ${port} after ${timeoutMs} ms:\n  ${child.stderrTail.join('\n  ')}`);
    await sleep(50);
  }
}

/** Resolves after `ms`. */
export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** The first of `names` found on PATH (or in /usr/sbin, where Debian puts daemons), or undefined. */
export function findBinary(...names: string[]): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/sbin', '/usr/local/sbin', '/sbin'];
  for (const name of names) {
    for (const dir of dirs) {
      if (!dir) continue;
      const p = join(dir, name);
      try {
        if (statSync(p).isFile()) return p;
      } catch {
        /* not here */
      }
    }
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// /proc readings

const TICKS_PER_SECOND = 100; // USER_HZ on Linux

/** pid and every descendant of it (nginx's master and its workers). */
export function processTree(pid: number): number[] {
  const parents = new Map<number, number[]>();
  let entries: string[] = [];
  try {
    entries = readdirSync('/proc');
  } catch {
    return [pid];
  }
  for (const e of entries) {
    if (!/^\d+$/.test(e)) continue;
    const stat = readStat(Number(e));
    if (!stat) continue;
    const list = parents.get(stat.ppid) ?? [];
    list.push(Number(e));
    parents.set(stat.ppid, list);
  }
  const out = [pid];
  for (let i = 0; i < out.length; i++) out.push(...(parents.get(out[i]!) ?? []));
  return out;
}

function readStat(pid: number): { ppid: number; cpuSeconds: number } | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // comm may hold spaces and parentheses: fields start after the last ')'.
    const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
    // rest[0] = state (field 3), rest[1] = ppid (4), rest[11] = utime (14), rest[12] = stime (15)
    return { ppid: Number(rest[1]), cpuSeconds: (Number(rest[11]) + Number(rest[12])) / TICKS_PER_SECOND };
  } catch {
    return undefined;
  }
}

/** CPU seconds used so far by the given processes together, in user space and in the kernel (system calls). */
export function cpuSplit(pids: readonly number[]): { user: number; system: number } {
  let user = 0;
  let system = 0;
  for (const pid of pids) {
    try {
      const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
      user += Number(rest[11]) / TICKS_PER_SECOND;
      system += Number(rest[12]) / TICKS_PER_SECOND;
    } catch {
      /* gone */
    }
  }
  return { user, system };
}

/** CPU seconds (user + system) used so far by the given processes together. */
export function cpuSeconds(pids: readonly number[]): number {
  let total = 0;
  for (const pid of pids) total += readStat(pid)?.cpuSeconds ?? 0;
  return total;
}

/** Resident set size in bytes of the given processes together (VmRSS). */
export function rssBytes(pids: readonly number[]): number {
  let total = 0;
  for (const pid of pids) {
    try {
      const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
      if (m) total += Number(m[1]) * 1024;
    } catch {
      /* gone */
    }
  }
  return total;
}

/** The soft limit on open files of this process (children inherit it). */
export function openFileLimit(): number {
  try {
    const m = /^Max open files\s+(\d+|unlimited)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
    if (m) return m[1] === 'unlimited' ? 1_048_576 : Number(m[1]);
  } catch {
    /* not Linux */
  }
  return 1024;
}
