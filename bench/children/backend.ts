/**
 * Benchmark backends, run as a child process (fork with IPC). Modes (first argument):
 *
 * - `fixed N`: N cheap HTTP servers (the fallback when nginx is not installed, and the
 *   discovery backends). `GET /small` answers a 100-byte body, `GET /64k` 65,536 bytes,
 *   `POST /upload` reads the whole body and answers `ok <bytes>`; every answer carries
 *   `x-backend: <port>`. Reports `{ type: 'listening', ports }`.
 * - `pool SPEC`: HTTP servers that model a backend with limited capacity, for the strategy
 *   scenarios. SPEC is JSON: `[{ serviceMs, slots, flapMs? }, ...]`. Each server works on at most
 *   `slots` requests at once, each for `serviceMs` (a timer); the rest wait in a FIFO queue, so
 *   an overloaded backend's latency grows as a real one's does. Each answer carries an ORCA
 *   `endpoint-load-metrics` header with the server's utilization (busy + queued slots over
 *   capacity, averaged over the last second, at most 0.95 so a busy backend still gets a
 *   trickle of requests and can report that it recovered). With `flapMs`, the server stops
 *   listening and resets its connections for `flapMs`, then listens again, and so on.
 *   IPC `{ type: 'counts' }` answers `{ type: 'counts', counts, reportedSum, reportedCount }`
 *   (per server: requests answered so far, and the sum and number of utilization values sent).
 * - `hold`: a TCP server that accepts connections and keeps them open, silent (idle
 *   connections for the memory scenario). IPC `{ type: 'stats' }` answers `{ connections }`.
 */
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createNetServer, type Socket } from 'node:net';
import { LARGE_BYTES, SMALL_BODY } from '../lib/payloads.js';

const send = (msg: unknown): void => void process.send?.(msg);
const mode = process.argv[2] ?? 'fixed';

const SMALL = Buffer.from(SMALL_BODY);
const BODY_64K = Buffer.alloc(LARGE_BYTES, 0x78);

function listen(server: Server, port = 0): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ port, host: '127.0.0.1', backlog: 4096 }, () => {
      server.off('error', reject);
      resolve((server.address() as { port: number }).port);
    });
  });
}

function tune(server: Server): void {
  // Longer than any proxy's upstream keep-alive, so a proxy never reuses a socket we are closing.
  server.keepAliveTimeout = 65_000;
  server.headersTimeout = 66_000;
  server.requestTimeout = 0;
  server.maxRequestsPerSocket = 0;
}

async function fixed(count: number): Promise<void> {
  const ports: number[] = [];
  for (let i = 0; i < count; i++) {
    let port = 0;
    const server = createHttpServer((req, res) => {
      const portHeader = String(port);
      if (req.method === 'POST' || req.method === 'PUT') {
        let bytes = 0;
        req.on('data', (c: Buffer) => (bytes += c.length));
        req.on('end', () => {
          res.writeHead(200, { 'content-type': 'text/plain', 'x-backend': portHeader });
          res.end(`ok ${bytes}\n`);
        });
        return;
      }
      req.resume();
      const body = req.url?.startsWith('/64k') ? BODY_64K : SMALL;
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': body.length, 'x-backend': portHeader });
      res.end(body);
    });
    tune(server);
    port = await listen(server);
    ports.push(port);
  }
  send({ type: 'listening', ports });
}

interface PoolSpec {
  serviceMs: number;
  slots: number;
  flapMs?: number;
}

class PoolServer {
  private busy = 0;
  private readonly queue: Array<() => void> = [];
  private readonly samples: number[] = [];
  private readonly sockets = new Set<Socket>();
  readonly server: Server;
  count = 0;
  port = 0;
  /** Sum and number of the utilization values sent in answers (what the proxy was told). */
  reportedSum = 0;
  reportedCount = 0;

  constructor(private readonly spec: PoolSpec) {
    this.server = createHttpServer((req, res) => this.handle(req, res));
    tune(this.server);
    this.server.on('connection', (s: Socket) => {
      this.sockets.add(s);
      s.once('close', () => this.sockets.delete(s));
    });
    // Utilization: (busy + queued) / slots, sampled every 50 ms, averaged over the last second.
    setInterval(() => {
      this.samples.push((this.busy + this.queue.length) / this.spec.slots);
      if (this.samples.length > 20) this.samples.shift();
    }, 50).unref();
  }

  get load(): number {
    if (!this.samples.length) return 0;
    return Math.min(0.95, this.samples.reduce((a, b) => a + b, 0) / this.samples.length);
  }

  async start(): Promise<void> {
    this.port = await listen(this.server);
    if (this.spec.flapMs) this.flap(this.spec.flapMs);
  }

  private flap(ms: number): void {
    let up = true;
    setInterval(() => {
      if (up) {
        this.server.close();
        for (const s of this.sockets) s.resetAndDestroy();
        up = false;
      } else {
        listen(this.server, this.port).then(
          () => (up = true),
          (err: Error) => process.stderr.write(`re-listen on ${this.port} failed: ${err.message}\n`),
        );
      }
    }, ms).unref();
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    req.resume();
    req.on('end', () => {
      const work = () => {
        this.busy++;
        setTimeout(() => {
          this.busy--;
          this.count++;
          if (!res.destroyed) {
            const load = this.load;
            this.reportedSum += load;
            this.reportedCount++;
            res.writeHead(200, {
              'content-type': 'text/plain',
              'x-backend': String(this.port),
              'endpoint-load-metrics': `TEXT application_utilization=${load.toFixed(3)}`,
            });
            res.end(SMALL);
          }
          this.queue.shift()?.();
        }, this.spec.serviceMs);
      };
      if (this.busy < this.spec.slots) work();
      else this.queue.push(work);
    });
  }
}

async function pool(specs: PoolSpec[]): Promise<void> {
  const servers = specs.map((s) => new PoolServer(s));
  for (const s of servers) await s.start();
  process.on('message', (m: { type?: string }) => {
    if (m.type === 'counts') {
      send({
        type: 'counts',
        counts: servers.map((s) => s.count),
        reportedSum: servers.map((s) => s.reportedSum),
        reportedCount: servers.map((s) => s.reportedCount),
      });
    }
  });
  send({ type: 'listening', ports: servers.map((s) => s.port) });
}

async function hold(): Promise<void> {
  const sockets = new Set<Socket>();
  const server = createNetServer((s) => {
    sockets.add(s);
    s.on('error', () => s.destroy());
    s.once('close', () => sockets.delete(s));
  });
  const port = await new Promise<number>((resolve) =>
    server.listen({ port: 0, host: '127.0.0.1', backlog: 4096 }, () => resolve((server.address() as { port: number }).port)),
  );
  process.on('message', (m: { type?: string }) => {
    if (m.type === 'stats') send({ type: 'stats', connections: sockets.size });
  });
  send({ type: 'listening', ports: [port] });
}

process.on('disconnect', () => process.exit(0));
process.on('SIGTERM', () => process.exit(0));
if (mode === 'fixed') await fixed(Number(process.argv[3] ?? 1));
else if (mode === 'pool') await pool(JSON.parse(process.argv[3] ?? '[]') as PoolSpec[]);
else if (mode === 'hold') await hold();
else throw new Error(`unknown backend mode ${mode}`);
