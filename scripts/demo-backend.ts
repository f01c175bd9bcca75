/**
 * A demo backend: a tiny HTTP server that answers after a fixed delay, says
 * which backend answered, and registers itself in ZooKeeper.
 * Usage: demo-backend PORT WEIGHT DELAY_MS ZOOKEEPER_CONNECT
 */
import { createServer } from 'node:http';
import { register } from '../src/registry/register.js';

const [port, weight, delay] = process.argv.slice(2, 5).map(Number) as [number, number, number];
const connect = process.argv[5]!;

const server = createServer((req, res) => {
  setTimeout(() => {
    res.setHeader('content-type', 'text/plain');
    res.end(`hello from demo backend 127.0.0.1:${port} (weight ${weight}, ${delay} ms) ${req.method} ${req.url}\n`);
  }, delay);
});
server.listen(port, '127.0.0.1', async () => {
  const registration = await register({ zookeeper: { connect }, path: '/services/demo', address: `127.0.0.1:${port}`, weight });
  process.send?.('ready');
  const stop = async () => {
    await registration.close();
    server.close();
    process.exit(0);
  };
  // Ctrl-C reaches the whole process group: let Drover drain first; the demo
  // sends SIGTERM once Drover has exited.
  process.on('SIGINT', () => {});
  process.on('SIGTERM', () => void stop());
});
