/**
 * @fastify/http-proxy, the fastest Node peer, in a child process of its own (fork with IPC).
 * Argument: `TARGET_URL`. Set up as its README shows a plain reverse proxy to one upstream:
 * `fastify({ logger: false })` with the plugin registered on `prefix: '/'` (everything is
 * forwarded, path unchanged), `http2: false`. Requests go out through undici (the plugin's
 * default, by @fastify/reply-from) with a keep-alive pool to the one origin; the `undici` options
 * are written out as @fastify/reply-from documents its defaults (128 connections, no
 * pipelining, 60 s keep-alive). Bodies are streamed both ways (the plugin's content-type parser
 * hands the request stream to undici unread). It adds no X-Forwarded-For (not by default, and
 * node-http-proxy's rows do not either). Reports `{ type: 'listening', port }`.
 */
import proxy from '@fastify/http-proxy';
import Fastify from 'fastify';

const target = process.argv[2];
if (!target) throw new Error('usage: fastify-proxy.js TARGET_URL');

// Client keep-alive as long as the other Node peers' (65 s, longer than any run).
const app = Fastify({ logger: false, keepAliveTimeout: 65_000 });
await app.register(proxy, {
  upstream: target,
  prefix: '/',
  http2: false,
  undici: { connections: 128, pipelining: 1, keepAliveTimeout: 60_000 },
});
await app.listen({ port: 0, host: '127.0.0.1' });
const address = app.server.address() as { port: number };
process.send?.({ type: 'listening', port: address.port });
process.on('disconnect', () => process.exit(0));
process.on('SIGTERM', () => process.exit(0));
