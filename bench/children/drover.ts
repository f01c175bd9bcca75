/**
 * Drover under test, in a child process of its own (fork with IPC). The first argument is the
 * path of a YAML config; it is read with parseConfig and started with Drover.start, logging
 * warnings and errors to stderr. Reports `{ type: 'ready', listeners: [{ name, address, engine }],
 * servers }` once every listener is bound and every service has its first member listing
 * (`servers` counts the TCP servers the process listens on, so an admin server, when this build
 * starts one for `admin:`, shows as one more than the listeners).
 *
 * IPC: `{ type: 'mem' }` runs a full GC (the process is started with --expose-gc) and answers
 * `{ type: 'mem', rss, heapUsed, external, arrayBuffers, connections }`. SIGTERM stops at once.
 */
import { readFile } from 'node:fs/promises';
import { parseConfig } from '../../src/config/load.js';
import { Drover } from '../../src/drover.js';
import { Logger } from '../../src/log.js';

const send = (msg: unknown): void => void process.send?.(msg);
const file = process.argv[2];
if (!file) throw new Error('usage: drover.js CONFIG.yaml');

const config = await parseConfig(await readFile(file, 'utf8'), file);
const drover = await Drover.start(config, { log: new Logger('warn', (line) => process.stderr.write(line)) });
while (!drover.ready) await new Promise((r) => setTimeout(r, 20));

const gc = (globalThis as { gc?: () => void }).gc;
process.on('message', (m: { type?: string }) => {
  if (m.type === 'mem') {
    gc?.();
    const u = process.memoryUsage();
    const connections = drover.listeners.reduce((n, l) => n + l.connections, 0);
    send({ type: 'mem', rss: u.rss, heapUsed: u.heapUsed, external: u.external, arrayBuffers: u.arrayBuffers, connections });
  }
});
process.on('SIGTERM', () => {
  void drover.stop(0).finally(() => process.exit(0));
});
process.on('disconnect', () => process.exit(0));

const servers = process.getActiveResourcesInfo().filter((r) => r === 'TCPServerWrap').length;
// `engine`: the HTTP engine the listener actually runs on (native falls back to http-proxy when
// Node's parser is not usable; DROVER_HTTP_ENGINE sets it for listeners that name none).
const engineOf = (l: unknown): string | undefined => (l as { engine?: string }).engine;
send({ type: 'ready', listeners: drover.listeners.map((l) => ({ name: l.config.name, address: l.address, engine: engineOf(l) })), servers });
