/**
 * What the throughput scenario measures: the backend itself (direct), Drover in HTTP mode on
 * its native engine (the default) and on the http-proxy engine, HTTP with `admin:` for the
 * cost of metrics, TCP mode, node-http-proxy without and with a keep-alive agent,
 * @fastify/http-proxy (undici; the fastest Node peer), and HAProxy and nginx in both modes when
 * installed. Each runs in its own process; `pids` are the processes whose CPU time is that
 * target's.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { nginxBackendUsable, startHaproxy, startNginxBackend, startNginxHttp, startNginxTcp } from './peers.js';
import { forkChild, freePorts, processTree, type Child } from './procs.js';

/** A started process the bench can measure and stop. */
export interface Running {
  port: number;
  /** The processes whose CPU and memory count for it. */
  pids: number[];
  stop(): Promise<void>;
}

/** The cheap backend every throughput target forwards to. */
export interface Backend extends Running {
  kind: 'nginx' | 'node';
}

/** One row of the throughput table. */
export interface Target extends Running {
  id: string;
  label: string;
  /** `direct` (no proxy), `http` (layer 7) or `tcp` (layer 4): rows are compared within a mode. */
  mode: 'direct' | 'http' | 'tcp';
  note?: string;
}

/** A target that was not run, and why. */
export interface Skipped {
  id: string;
  label: string;
  reason: string;
}

/** Starts nginx as the backend when installed with its echo module (one worker), else the minimal Node backend. */
export async function startBackend(nginx: string | undefined): Promise<Backend> {
  if (nginx && nginxBackendUsable()) {
    const [port] = await freePorts(1);
    const peer = await startNginxBackend(nginx, port!);
    return { kind: 'nginx', port: peer.port, pids: processTree(peer.child.pid), stop: () => peer.stop() };
  }
  const child = forkChild('node-backend', 'children/backend.js', ['fixed', '1']);
  const { ports } = (await child.next('listening')) as { ports: number[] };
  return { kind: 'node', port: ports[0]!, pids: [child.pid], stop: () => child.stop() };
}

/** A Drover child process started from `yaml`, with its listeners' ports by name. */
export interface DroverProcess {
  child: Child;
  ports: Map<string, number>;
  /** The HTTP engine each HTTP listener runs on, by name (what the process reports, fallbacks included). */
  engines: Map<string, string>;
  /** TCP servers the process listens on (listeners, plus an admin server when one runs). */
  servers: number;
  stop(): Promise<void>;
}

/**
 * Writes `yaml` to a temporary file and starts Drover on it in a child process (with
 * --expose-gc, plus `execArgv`, e.g. --cpu-prof).
 */
export async function startDrover(name: string, yaml: string, execArgv: string[] = []): Promise<DroverProcess> {
  const dir = mkdtempSync(join(tmpdir(), 'drover-bench-'));
  const file = join(dir, 'drover.yaml');
  writeFileSync(file, yaml);
  // --max-semi-space-size=2: as the `drover` command runs (its first line), so the figures are the command's.
  const child = forkChild(name, 'children/drover.js', [file], ['--expose-gc', '--max-semi-space-size=2', ...execArgv]);
  try {
    const ready = (await child.next('ready', 60_000)) as { listeners: Array<{ name: string; address: string; engine?: string }>; servers: number };
    const ports = new Map(ready.listeners.map((l) => [l.name, Number(l.address.slice(l.address.lastIndexOf(':') + 1))]));
    const engines = new Map(ready.listeners.filter((l) => l.engine).map((l) => [l.name, l.engine!]));
    return {
      child,
      ports,
      engines,
      servers: ready.servers,
      async stop() {
        await child.stop('SIGTERM', 3000);
        rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    await child.stop('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}

/** Drover's HTTP engines: `native` (the default) and `http-proxy` (the previous one). */
export type DroverEngine = 'native' | 'http-proxy';

/**
 * A one-listener Drover config forwarding to 127.0.0.1:backend. HTTP listeners name their
 * `engine` (native, the default, unless told), so DROVER_HTTP_ENGINE in the environment cannot
 * switch a row's engine behind its label.
 */
export function droverYaml(mode: 'http' | 'tcp', backend: number, extra = '', engine: DroverEngine = 'native', listenerExtra = ''): string {
  return `drainTimeout: 1s
logLevel: warn
${extra}services:
  backend:
    static: [127.0.0.1:${backend}]
listeners:
  - name: bench
    mode: ${mode}
    bind: 127.0.0.1:0
    service: backend
    maxConnections: 20000
${mode === 'http' ? `    engine: ${engine}\n` : ''}${listenerExtra}`;
}

/** A note when a Drover HTTP process does not run the engine its row names (the native engine fell back), else undefined. */
export function engineNote(d: DroverProcess, engine: DroverEngine): string | undefined {
  const actual = d.engines.get('bench');
  return actual && actual !== engine ? `asked for the ${engine} engine, but the process runs ${actual} (see its warning): this row measures ${actual}` : undefined;
}

async function droverTarget(
  id: string,
  label: string,
  mode: 'http' | 'tcp',
  backend: number,
  extra = '',
  engine: DroverEngine = 'native',
): Promise<Target & { servers: number }> {
  const d = await startDrover(id, droverYaml(mode, backend, extra, engine));
  const note = mode === 'http' ? engineNote(d, engine) : undefined;
  return { id, label, mode, port: d.ports.get('bench')!, pids: [d.child.pid], servers: d.servers, stop: () => d.stop(), ...(note ? { note } : {}) };
}

async function fastifyProxyTarget(id: string, label: string, backend: number): Promise<Target> {
  const child = forkChild(id, 'children/fastify-proxy.js', [`http://127.0.0.1:${backend}`]);
  const { port } = (await child.next('listening')) as { port: number };
  return { id, label, mode: 'http', port, pids: [child.pid], stop: () => child.stop() };
}

async function nodeProxyTarget(id: string, label: string, backend: number, keepAlive: boolean): Promise<Target> {
  const child = forkChild(id, 'children/node-proxy.js', [`http://127.0.0.1:${backend}`, ...(keepAlive ? ['keepalive'] : [])]);
  const { port } = (await child.next('listening')) as { port: number };
  return { id, label, mode: 'http', port, pids: [child.pid], stop: () => child.stop() };
}

/** Starts every target of the throughput table; the ones that cannot run here are listed as skipped. */
export async function startTargets(backend: Backend, bins: { haproxy?: string; nginx?: string }): Promise<{ targets: Target[]; skipped: Skipped[] }> {
  const targets: Target[] = [];
  const skipped: Skipped[] = [];
  targets.push({ id: 'direct', label: `direct (${backend.kind} backend)`, mode: 'direct', port: backend.port, pids: [], stop: async () => {} });
  targets.push(await droverTarget('drover-http', 'Drover HTTP', 'http', backend.port));
  targets.push(await droverTarget('drover-http-proxy', 'Drover HTTP (http-proxy engine)', 'http', backend.port, '', 'http-proxy'));
  // The cost of metrics: the same config (native engine) plus `admin:`. Whether an admin server
  // (and with it the metrics) actually runs shows in the process's listening sockets, and the
  // row says so when it does not.
  const metrics = await droverTarget('drover-http-metrics', 'Drover HTTP + metrics', 'http', backend.port, 'admin: { listen: 127.0.0.1:0 }\n');
  if (metrics.servers <= 1) metrics.note = [metrics.note, 'this build parses admin: but starts no admin server or metrics: same work as Drover HTTP'].filter(Boolean).join('; ');
  targets.push(metrics);
  targets.push(await droverTarget('drover-tcp', 'Drover TCP', 'tcp', backend.port));
  targets.push(await nodeProxyTarget('http-proxy', 'node-http-proxy (tutorial, no keep-alive)', backend.port, false));
  targets.push(await nodeProxyTarget('http-proxy-ka', 'node-http-proxy + keep-alive agent', backend.port, true));
  targets.push(await fastifyProxyTarget('fastify-proxy', '@fastify/http-proxy (undici)', backend.port));
  if (bins.haproxy) {
    for (const mode of ['http', 'tcp'] as const) {
      const [port] = await freePorts(1);
      const p = await startHaproxy(bins.haproxy, mode, port!, backend.port);
      targets.push({ id: `haproxy-${mode}`, label: `HAProxy ${mode.toUpperCase()}`, mode, port: p.port, pids: [p.child.pid], stop: () => p.stop() });
    }
  } else {
    const reason = 'haproxy not installed (apt-get install haproxy)';
    skipped.push({ id: 'haproxy-http', label: 'HAProxy HTTP', reason }, { id: 'haproxy-tcp', label: 'HAProxy TCP', reason });
  }
  if (bins.nginx) {
    const [httpPort, tcpPort] = await freePorts(2);
    const h = await startNginxHttp(bins.nginx, httpPort!, backend.port);
    targets.push({ id: 'nginx-http', label: 'nginx HTTP', mode: 'http', port: h.port, pids: processTree(h.child.pid), stop: () => h.stop() });
    try {
      const t = await startNginxTcp(bins.nginx, tcpPort!, backend.port);
      targets.push({ id: 'nginx-tcp', label: 'nginx TCP (stream)', mode: 'tcp', port: t.port, pids: processTree(t.child.pid), stop: () => t.stop() });
    } catch (err) {
      skipped.push({ id: 'nginx-tcp', label: 'nginx TCP (stream)', reason: `nginx stream module missing? (apt-get install libnginx-mod-stream): ${(err as Error).message.split('\n')[0]}` });
    }
  } else {
    const reason = 'nginx not installed (apt-get install nginx-light libnginx-mod-stream)';
    skipped.push({ id: 'nginx-http', label: 'nginx HTTP', reason }, { id: 'nginx-tcp', label: 'nginx TCP (stream)', reason });
  }
  return { targets, skipped };
}
