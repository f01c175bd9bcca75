/**
 * The status page end to end in headless Chromium (Debian's `chromium`,
 * driven by playwright-core): it shows the listener, the service and both
 * backends, computes a request rate from live traffic, and turns a backend
 * whose process was killed `down`. Saves test-results/status-page.png.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { chromium } from 'playwright-core';
import { request, ROOT, startHttpBackend, startProxy, type TestBackend, type TestProxy } from '../fixtures/harness.js';

const CHROMIUM = '/usr/bin/chromium';
const noChromium = existsSync(CHROMIUM)
  ? undefined
  : `no Chromium at ${CHROMIUM}: install Debian's package with \`apt-get update && apt-get install -y chromium\` (.ci/run does) to run the status page test`;

/** Flags for Chromium on these machines: no sandbox as root, and no background connections to a closed network. */
const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

describe('status page in headless Chromium', { skip: noChromium, timeout: 60_000 }, () => {
  it('shows every listener, service and backend live, with request rates, and a killed backend turning down', async () => {
    const [a, b]: TestBackend[] = await Promise.all([startHttpBackend(), startHttpBackend()]);
    let proxy: TestProxy | undefined;
    // Launched as a child process; playwright gives it a fresh, empty user-data-dir.
    const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, timeout: 30_000 });
    try {
      proxy = await startProxy(`
admin: { listen: 127.0.0.1:0 }
services:
  web:
    static: [127.0.0.1:${a.port}, 127.0.0.1:${b.port}]
    healthCheck: { type: http, path: /echo, interval: 100ms, fall: 1 }
listeners: [ { name: web, mode: http, bind: 127.0.0.1:0, service: web } ]`);
      const web = proxy.port('web');
      const row = (port: number) => `tr[data-service="web"][data-backend="127.0.0.1:${port}"]`;

      const page = await browser.newPage({ viewport: { width: 1280, height: 640 } });
      const problems: string[] = [];
      page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
      // A CSP violation is reported on the console as an error.
      page.on('console', (msg) => {
        if (msg.type() === 'error') problems.push(`console: ${msg.text()}`);
      });
      const response = await page.goto(`http://127.0.0.1:${proxy.drover.admin!.port}/`);
      assert.equal(response?.status(), 200);
      assert.equal(await page.title(), 'Drover status');

      await page.locator('tr[data-listener="web"]').waitFor();
      await page.locator(`${row(a.port)} td.state[data-state="up"]`).waitFor();
      await page.locator(`${row(b.port)} td.state[data-state="up"]`).waitFor();
      assert.equal(await page.locator('#ready').textContent(), 'ready');
      assert.match((await page.locator('tr[data-listener="web"]').textContent()) ?? '', new RegExp(`127\\.0\\.0\\.1:${web}`));

      // Traffic until the page shows a request rate above zero for both backends (two polls apart).
      let sending = true;
      const load = (async () => {
        while (sending) assert.equal((await request(web, { path: '/echo' })).status, 200);
      })();
      try {
        await page.locator(`${row(a.port)} td.rate`, { hasText: /[1-9]/ }).waitFor({ timeout: 15_000 });
        await page.locator(`${row(b.port)} td.rate`, { hasText: /[1-9]/ }).waitFor({ timeout: 15_000 });
      } finally {
        sending = false;
        await load;
      }
      assert.match((await page.locator(`${row(a.port)} td.latency`).textContent()) ?? '', /\d ms$/);

      await b.stop(); // SIGKILL: the process is gone, its checks fail
      await page.locator(`${row(b.port)} td.state[data-state="down"]`).waitFor({ timeout: 15_000 });
      assert.equal(await page.locator(`${row(a.port)} td.state`).getAttribute('data-state'), 'up');
      assert.equal(await page.locator(`${row(b.port)} td.state`).textContent(), 'down');

      mkdirSync(join(ROOT, 'test-results'), { recursive: true });
      await page.screenshot({ path: join(ROOT, 'test-results', 'status-page.png'), fullPage: true });
      assert.deepEqual(problems, [], 'no script errors or CSP violations');
    } finally {
      await browser.close();
      await proxy?.stop();
      await Promise.all([a.stop(), b.stop()]);
    }
  });
});
