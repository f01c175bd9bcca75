import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { request, startProxy } from '../fixtures/harness.js';
import { Metrics, upstreamReason } from '../../src/metrics/metrics.js';

describe('metrics details', () => {
  it('labels a response Node’s parser refused as invalid_response', () => {
    assert.equal(upstreamReason(Object.assign(new Error('Invalid header token'), { code: 'HPE_INVALID_HEADER_TOKEN' })), 'invalid_response');
    assert.equal(upstreamReason(Object.assign(new Error('x'), { code: 'ECONNREFUSED' })), 'refused');
    assert.equal(upstreamReason(new Error('no code')), 'other');
  });

  it('shares one set of process metrics between Drovers in one process', async () => {
    const [a, b] = [new Metrics(), new Metrics()];
    for (const text of [await a.text(), await b.text()]) assert.match(text, /^drover_process_cpu_user_seconds_total \d/m);
    assert.equal(a.registry.getSingleMetric('drover_process_cpu_user_seconds_total'), undefined, 'not registered per instance');
  });

  it('drops a departed backend’s series at the member change, without waiting for a scrape', async () => {
    const yaml = (ports: number[]) => `
admin: { listen: 127.0.0.1:0 }
services: { s: { static: [${ports.map((p) => `127.0.0.1:${p}`).join(', ')}], retries: 0 } }
listeners: [ { mode: http, bind: 127.0.0.1:0, service: s } ]`;
    const proxy = await startProxy(yaml([1]));
    try {
      // A refused connect records an upstream error for 127.0.0.1:1 (memory is what is checked: no scrape).
      assert.equal((await request(proxy.port())).status, 502);
      const series = () => [...(proxy.drover.metrics as unknown as { serviceCounts: Map<string, { errors: Map<string, unknown> }> }).serviceCounts.get('s')!.errors.keys()];
      assert.deepEqual(series(), ['127.0.0.1:1']);
      await proxy.reload(yaml([2]));
      assert.deepEqual(series(), [], 'gone before any scrape');
    } finally {
      await proxy.stop();
    }
  });
});
