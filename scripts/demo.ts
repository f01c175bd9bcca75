/**
 * `npm run demo`: three demo backends and Drover in front of them, using
 * config/demo.yaml. Sends a few requests to show the balancing, then keeps
 * running until Ctrl-C, when it stops Drover (which drains) and the backends.
 */
import { fork, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { get } from 'node:http';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../', import.meta.url));
const ports = [7101, 7102, 7103];
const children: ChildProcess[] = [];

async function main(): Promise<void> {
  for (const port of ports) {
    const child = fork(fileURLToPath(new URL('./demo-backend.js', import.meta.url)), [String(port)]);
    children.push(child);
    await Promise.race([once(child, 'message'), once(child, 'exit').then(() => Promise.reject(new Error(`demo backend on port ${port} failed to start (port in use?)`)))]);
  }
  const drover = spawn(process.execPath, [`${root}dist/src/cli.js`, '--config', `${root}config/demo.yaml`], { stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(drover);
  let started = false;
  const ready = new Promise<void>((resolve, reject) => {
    drover.stdout!.on('data', (chunk: Buffer) => {
      process.stdout.write(chunk);
      if (!started && chunk.toString().includes('"drover started"')) {
        started = true;
        resolve();
      }
    });
    drover.once('exit', (code) => reject(new Error(`drover exited with code ${code}`)));
  });
  await ready;
  console.log('\nTen requests through the weighted listener (weights 3:1:1):');
  for (let i = 0; i < 10; i++) process.stdout.write(`  ${await fetchText('http://127.0.0.1:7080/')}`);
  console.log('\nThree requests through the ip-hash listener (same client, same backend):');
  for (let i = 0; i < 3; i++) process.stdout.write(`  ${await fetchText('http://127.0.0.1:7081/')}`);
  console.log('\nDrover is running: try  curl http://127.0.0.1:7080/  (Ctrl-C stops it)\n');
  await once(drover, 'exit');
}

function fetchText(url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    get(url, { agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve(body));
    }).on('error', reject);
  });
}

function stopAll(): void {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
}

// Ctrl-C in a terminal reaches every process of the group, Drover included,
// which then drains; signalling it again would make it close at once. So on
// SIGINT the demo only waits for Drover to finish; main() stops the rest.
process.on('SIGINT', () => {});
process.on('SIGTERM', stopAll);
main().then(
  () => {
    stopAll();
  },
  (err: unknown) => {
    console.error(`demo: ${(err as Error).message}`);
    stopAll();
    process.exitCode = 1;
  },
);
