import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ROOT, startProxy } from '../fixtures/harness.js';

interface Panel {
  title: string;
  targets?: Array<{ expr: string }>;
}

describe('the Grafana dashboard', () => {
  const dashboard = JSON.parse(readFileSync(join(ROOT, 'config/grafana/drover.json'), 'utf8')) as { panels: Panel[]; templating: { list: Array<{ name: string }> } };

  it('queries only metrics Drover exports', async () => {
    const proxy = await startProxy(`
admin: { listen: 127.0.0.1:0 }
zookeeper: { connect: "127.0.0.1:1", sessionTimeout: 2s }
services: { web: { zookeeper: /services/web } }
listeners: [ { mode: http, bind: 127.0.0.1:0, service: web } ]`);
    try {
      const text = await proxy.drover.metrics!.text();
      const exported = new Set([...text.matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1]!));
      const used = new Set<string>();
      for (const panel of dashboard.panels) {
        for (const target of panel.targets ?? []) {
          for (const m of target.expr.matchAll(/\b(drover_[a-z0-9_]+)/g)) used.add(m[1]!.replace(/_(bucket|sum|count)$/, ''));
        }
      }
      assert.ok(used.size >= 15, `the dashboard uses ${used.size} metrics`);
      const missing = [...used].filter((name) => !exported.has(name));
      assert.deepEqual(missing, [], 'every metric the dashboard queries is exported');
    } finally {
      await proxy.stop();
    }
  });

  it('has the panels the README describes, on a data source and service the user picks', () => {
    const titles = dashboard.panels.map((p) => p.title);
    for (const title of ['Traffic per backend', 'Error rate', 'Latency quantiles', 'Discovery events']) assert.ok(titles.includes(title), title);
    assert.deepEqual(dashboard.templating.list.map((v) => v.name), ['datasource', 'service']);
  });
});
