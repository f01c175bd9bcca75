/**
 * `npm run demo`: a local ZooKeeper, three demo backends that register
 * themselves in it, and Drover in front of them with config/demo.yaml
 * (HTTP on 127.0.0.1:8080, TCP on 127.0.0.1:8081). Sends a few requests to
 * show the balancing, then keeps running until Ctrl-C, which drains Drover,
 * deregisters the backends, stops ZooKeeper and removes its data directory.
 */
import { fork, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { get } from 'node:http';
import { fileURLToPath } from 'node:url';
import { startZooKeeper, zookeeperAvailable, type ZooKeeperServer } from '../test/fixtures/zookeeper.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const ZK_PORT = 2191;
const backends = [
  { port: 7101, weight: 3, delay: 5 },
  { port: 7102, weight: 1, delay: 20 },
  { port: 7103, weight: 1, delay: 80 },
];
const children: ChildProcess[] = [];
let zk: ZooKeeperServer | undefined;

/** Finds ZooKeeper, installing Debian's package when it is missing and we are root. */
function ensureZooKeeper(): void {
  if (!zookeeperAvailable()) return;
  if (process.getuid?.() !== 0) {
    throw new Error(`${zookeeperAvailable()}\n(run as root to let the demo install it, or set ZOOKEEPER_HOME)`);
  }
  console.log('ZooKeeper is not installed: installing Debian\'s zookeeper package (apt-get)...');
  for (const args of [['update'], ['install', '-y', '--no-install-recommends', 'zookeeper']]) {
    const r = spawnSync('apt-get', args, { stdio: 'inherit', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
    if (r.status !== 0) throw new Error(`apt-get ${args.join(' ')} failed`);
  }
  if (zookeeperAvailable()) throw new Error(zookeeperAvailable());
}

async function main(): Promise<void> {
  ensureZooKeeper();
  zk = await startZooKeeper({ port: ZK_PORT });
  console.log(`ZooKeeper is up on ${zk.connect} (data in ${zk.dir})`);
  for (const b of backends) {
    const child = fork(fileURLToPath(new URL('./demo-backend.js', import.meta.url)), [String(b.port), String(b.weight), String(b.delay), zk.connect]);
    children.push(child);
    await Promise.race([
      once(child, 'message'),
      once(child, 'exit').then(() => Promise.reject(new Error(`demo backend on port ${b.port} failed to start (port in use?)`))),
    ]);
  }
  console.log('Three demo backends registered under /services/demo (weights 3, 1, 1; 5, 20, 80 ms)');
  // The Node flag the `drover` command's first line gives it (a small young generation).
  const drover = spawn(process.execPath, ['--max-semi-space-size=2', `${root}dist/src/cli.js`, '--config', `${root}config/demo.yaml`], { stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(drover);
  await new Promise<void>((resolve, reject) => {
    let ready = false;
    drover.stdout!.on('data', (chunk: Buffer) => {
      process.stdout.write(chunk);
      if (!ready && chunk.toString().includes('"all services ready"')) {
        ready = true;
        resolve();
      }
    });
    drover.once('exit', (code) => reject(new Error(`drover exited with code ${code}`)));
  });
  console.log('\nTen requests through the HTTP listener (response-time: the 5 ms backend gets most):');
  for (let i = 0; i < 10; i++) process.stdout.write(`  ${await fetchText('http://127.0.0.1:8080/')}`);
  console.log('\nSix requests through the TCP listener (weighted round robin, 3:1:1):');
  for (let i = 0; i < 6; i++) process.stdout.write(`  ${await fetchText('http://127.0.0.1:8081/')}`);
  console.log(`
Drover is running. Try:
  curl http://127.0.0.1:8080/          HTTP mode (a backend per request)
  curl http://127.0.0.1:8081/          TCP mode (a backend per connection)
  node dist/src/cli.js register --zookeeper ${zk.connect} --path /services/demo --address 127.0.0.1:7104
                                       (start something on 7104 first: it joins at once)
Ctrl-C stops everything.
`);
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

/** Stops the backends (they deregister), then ZooKeeper, removing its data. */
async function stopAll(): Promise<void> {
  await Promise.all(
    children.map(async (child) => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = once(child, 'exit');
      child.kill('SIGTERM');
      await exited;
    }),
  );
  await zk?.destroy();
}

// Ctrl-C in a terminal reaches every process of the group: Drover drains on
// it, and main() then stops the rest. A SIGTERM is passed on.
process.on('SIGINT', () => {});
process.on('SIGTERM', () => void stopAll());
main().then(
  () => stopAll(),
  async (err: unknown) => {
    console.error(`demo: ${(err as Error).message}`);
    await stopAll();
    process.exitCode = 1;
  },
);
