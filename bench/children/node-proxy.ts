/**
 * node-http-proxy as most tutorials use it, in a child process of its own (fork with IPC).
 * Arguments: `TARGET_URL [keepalive]`. Without `keepalive` it is the tutorial's three lines
 * (`createProxyServer({ target })` and `proxy.web(req, res)`), whose upstream requests use no
 * keep-alive agent, so every request opens a new backend connection. With `keepalive` the
 * proxy gets `new http.Agent({ keepAlive: true, maxSockets: 256 })`, as Drover's pools have.
 * Reports `{ type: 'listening', port }`.
 */
import { Agent, createServer } from 'node:http';
import httpProxy from 'http-proxy';

const target = process.argv[2];
if (!target) throw new Error('usage: node-proxy.js TARGET_URL [keepalive]');
const keepAlive = process.argv[3] === 'keepalive';

const proxy = httpProxy.createProxyServer({
  target,
  ...(keepAlive ? { agent: new Agent({ keepAlive: true, maxSockets: 256, keepAliveMsecs: 1000 }) } : {}),
});
proxy.on('error', (_err, _req, res) => {
  // A tutorial proxy crashes on an unhandled 'error'; answer 502 instead so the run goes on.
  if ('writeHead' in res && !res.headersSent) res.writeHead(502);
  res.end();
});
const server = createServer((req, res) => proxy.web(req, res));
server.keepAliveTimeout = 65_000;
server.headersTimeout = 66_000;
server.listen(0, '127.0.0.1', () => {
  process.send?.({ type: 'listening', port: (server.address() as { port: number }).port });
});
process.on('disconnect', () => process.exit(0));
process.on('SIGTERM', () => process.exit(0));
