import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Logger } from '../../src/log.js';
import { FAILURE_LOG_WINDOW_MS, FailureLog, noBackend, queueFull } from '../../src/proxy/http/delivery.js';

describe('failure log', () => {
  it('logs the first failure of a service and reason at once, then one line per window carrying how many were left out', () => {
    const lines: Array<Record<string, unknown>> = [];
    const log = new Logger('warn', (line) => lines.push(JSON.parse(line) as Record<string, unknown>));
    let now = 0;
    const failures = new FailureLog(log, () => now);
    for (let i = 0; i < 4; i++) failures.report('web', noBackend('s'), 's', '', `r${i}`);
    failures.report('web', queueFull('s', 10), 's', '10.0.0.1:80', 'q0');
    failures.report('web', noBackend('other'), 'other', '', 'o0');
    assert.deepEqual(
      lines.map((l) => [l.service, l.reason, l.requestId, l.suppressed]),
      [
        ['s', 'no_backend', 'r0', undefined],
        ['s', 'queue_full', 'q0', undefined],
        ['other', 'no_backend', 'o0', undefined],
      ],
    );
    now += FAILURE_LOG_WINDOW_MS;
    failures.report('web', noBackend('s'), 's', '', 'r4');
    assert.deepEqual(lines.at(-1)!.suppressed, 3, 'the three left out in the window are counted');
    assert.equal(lines.at(-1)!.requestId, 'r4');
    assert.equal(lines.at(-1)!.level, 'warn');
  });

  it('does not log refusals of bad requests (they are the client\'s fault, not a failure)', () => {
    const lines: string[] = [];
    const failures = new FailureLog(new Logger('debug', (line) => lines.push(line)));
    failures.report('web', { status: 400, code: 'DROVER_BAD_REQUEST', message: 'x' }, 's', '', 'r');
    assert.deepEqual(lines, []);
  });
});
