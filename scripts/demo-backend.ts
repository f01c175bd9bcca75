/** A demo backend: a tiny HTTP server that says which backend answered. Usage: demo-backend PORT */
import { createServer } from 'node:http';

const port = Number(process.argv[2]);
createServer((req, res) => {
  res.setHeader('content-type', 'text/plain');
  res.end(`hello from demo backend 127.0.0.1:${port} (${req.method} ${req.url})\n`);
}).listen(port, '127.0.0.1', () => process.send?.('ready'));
// Ctrl-C reaches the whole process group: let Drover drain first; the demo
// stops this backend with SIGTERM once Drover has exited.
process.on('SIGINT', () => {});
