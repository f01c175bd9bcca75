/**
 * HAProxy and nginx, started directly (no service manager) with generated configs in a
 * temporary directory, on free ports on 127.0.0.1, in the foreground, and stopped by pid.
 *
 * Every proxy gets one thread or worker, like Drover's one Node process, and is set up as its
 * Drover counterpart: keep-alive to the client and to the backend, bodies streamed both ways
 * (nginx: proxy_buffering and proxy_request_buffering off), X-Forwarded-For appended, Host kept,
 * no access log.
 */
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LARGE_BYTES, SMALL_BODY } from './payloads.js';
import { spawnChild, waitForPort, type Child } from './procs.js';

/** A running peer process and the directory it runs from. */
export interface Peer {
  child: Child;
  port: number;
  dir: string;
  stop(): Promise<void>;
}

const NGINX_STREAM_MODULE = '/usr/lib/nginx/modules/ngx_stream_module.so';
/** The echo module (Debian's libnginx-mod-http-echo, which nginx-light pulls in): lets /upload read the body before answering. */
const NGINX_ECHO_MODULE = '/usr/lib/nginx/modules/ngx_http_echo_module.so';

function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), `drover-bench-${prefix}-`));
  // nginx's workers drop to an unprivileged user when started as root: they must read the files.
  chmodSync(dir, 0o755);
  return dir;
}

function peer(child: Child, port: number, dir: string): Peer {
  return {
    child,
    port,
    dir,
    async stop() {
      await child.stop('SIGTERM', 3000);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Waits until `child` listens on `port`; if it does not, stops it and removes its directory. */
async function started(child: Child, port: number, dir: string): Promise<Peer> {
  const p = peer(child, port, dir);
  try {
    await waitForPort(port, child);
  } catch (err) {
    await p.stop();
    throw err;
  }
  return p;
}

/** The common top of an nginx config run from `dir` as a foreground process with one worker. */
function nginxTop(dir: string, stream: boolean): string {
  for (const sub of ['body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']) mkdirSync(join(dir, 'tmp', sub), { recursive: true });
  return [
    stream ? `load_module ${NGINX_STREAM_MODULE};` : '',
    'worker_processes 1;',
    `pid ${join(dir, 'nginx.pid')};`,
    `error_log ${join(dir, 'error.log')} warn;`,
    // Each proxied connection takes two; stay under this machine's 20,000 open files.
    'events { worker_connections 19800; }',
  ].join('\n');
}

function nginxHttpTemps(dir: string): string {
  return ['body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']
    .map((s) => `${s === 'body' ? 'client_body' : s}_temp_path ${join(dir, 'tmp', s)};`)
    .join('\n  ');
}

async function startNginx(nginx: string, name: string, dir: string, conf: string, port: number): Promise<Peer> {
  const file = join(dir, 'nginx.conf');
  writeFileSync(file, conf);
  const child = spawnChild(name, nginx, ['-e', join(dir, 'error.log'), '-p', dir, '-c', file, '-g', 'daemon off;']);
  return started(child, port, dir);
}

/** Whether nginx can be the backend here: it needs the echo module for /upload. */
export function nginxBackendUsable(): boolean {
  return existsSync(NGINX_ECHO_MODULE);
}

/**
 * nginx as the cheap backend: /small (100 bytes), /64k (a static file), POST /upload (the whole
 * body read, then `ok`). The upload answer waits for the body (echo_read_request_body), as an
 * upload handler does: nginx's plain `return` answers before reading the body, which is legal
 * but measures something else (and makes Drover stall, see bench/README.md).
 */
export async function startNginxBackend(nginx: string, port: number): Promise<Peer> {
  const dir = tempDir('nginx-backend');
  writeFileSync(join(dir, '64k.bin'), Buffer.alloc(LARGE_BYTES, 0x78));
  const small = SMALL_BODY.replace(/\\/g, '\\\\').replace(/'/g, "\\'").replace(/\n/g, '\\n');
  const conf = `load_module ${NGINX_ECHO_MODULE};\n${nginxTop(dir, false)}
http {
  access_log off;
  ${nginxHttpTemps(dir)}
  sendfile on;
  tcp_nopush on;
  keepalive_requests 1000000;
  keepalive_timeout 65s;
  server {
    listen 127.0.0.1:${port} backlog=4096;
    client_max_body_size 4m;
    client_body_buffer_size 2m;
    location = /small { default_type application/octet-stream; return 200 '${small}'; }
    location = /64k { default_type application/octet-stream; alias ${join(dir, '64k.bin')}; }
    location = /upload { echo_read_request_body; echo ok; }
    location / { default_type application/octet-stream; return 200 '${small}'; }
  }
}
`;
  return startNginx(nginx, 'nginx-backend', dir, conf, port);
}

/** nginx as an HTTP reverse proxy to `backend` (upstream keep-alive, streaming bodies). */
export async function startNginxHttp(nginx: string, port: number, backend: number): Promise<Peer> {
  const dir = tempDir('nginx-http');
  const conf = `${nginxTop(dir, false)}
http {
  access_log off;
  ${nginxHttpTemps(dir)}
  keepalive_requests 1000000;
  keepalive_timeout 65s;
  upstream be {
    server 127.0.0.1:${backend};
    keepalive 256;
    keepalive_requests 1000000;
  }
  server {
    listen 127.0.0.1:${port} backlog=4096;
    client_max_body_size 4m;
    location / {
      proxy_pass http://be;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $http_host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_buffering off;
      proxy_request_buffering off;
    }
  }
}
`;
  return startNginx(nginx, 'nginx-http', dir, conf, port);
}

/** nginx's stream module as a TCP proxy to `backend`. */
export async function startNginxTcp(nginx: string, port: number, backend: number): Promise<Peer> {
  const dir = tempDir('nginx-tcp');
  const conf = `${nginxTop(dir, true)}
stream {
  upstream be { server 127.0.0.1:${backend}; }
  server {
    listen 127.0.0.1:${port} backlog=4096;
    proxy_pass be;
  }
}
`;
  return startNginx(nginx, 'nginx-tcp', dir, conf, port);
}

/** HAProxy in `mode` (http or tcp) in front of `backend`, one thread, in the foreground (-db). */
export async function startHaproxy(haproxy: string, mode: 'http' | 'tcp', port: number, backend: number, maxconn = 8000): Promise<Peer> {
  const dir = tempDir(`haproxy-${mode}`);
  const file = join(dir, 'haproxy.cfg');
  const http = mode === 'http';
  writeFileSync(
    file,
    `global
  nbthread 1
  maxconn ${maxconn}
defaults
  mode ${mode}
  timeout connect 5s
  timeout client 60s
  timeout server 60s
${http ? '  timeout http-keep-alive 60s\n  option http-keep-alive\n  option forwardfor\n  http-reuse safe\n' : ''}frontend fe
  bind 127.0.0.1:${port}
  default_backend be
backend be
  server s1 127.0.0.1:${backend}
`,
  );
  const child = spawnChild(`haproxy-${mode}`, haproxy, ['-db', '-f', file]);
  return started(child, port, dir);
}
