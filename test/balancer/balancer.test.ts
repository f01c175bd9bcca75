import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ServiceBalancer } from '../../src/balancer/balancer.js';
import { strategies } from '../../strategies/index.js';

const rr = { label: 'round-robin', factory: strategies['round-robin']!, options: {} };
const member = (port: number, extra: { drain?: boolean; weight?: number } = {}) => ({ host: '127.0.0.1', port, weight: extra.weight ?? 1, ...extra });

describe('service balancer', () => {
  it('takes no new connections to a member the registry marks drain, and takes it back when cleared', () => {
    const b = new ServiceBalancer('s', rr, 0);
    b.update([member(1), member(2, { drain: true })]);
    assert.deepEqual(new Set([1, 2, 3, 4].map(() => b.candidates()[0]!.port)), new Set([1]));
    b.update([member(1), member(2)]);
    assert.deepEqual(new Set([1, 2, 3, 4].map(() => b.candidates()[0]!.port)), new Set([1, 2]));
  });

  it('keeps a drain set through the API when the registry clears its own', () => {
    const b = new ServiceBalancer('s', rr, 0);
    b.update([member(1), member(2, { drain: true })]);
    b.states.setDraining('127.0.0.1:2', true);
    b.update([member(1), member(2)]);
    assert.deepEqual(new Set([1, 2, 3, 4].map(() => b.candidates()[0]!.port)), new Set([1]));
  });

  it('drops an identical member list without rebuilding', () => {
    const b = new ServiceBalancer('s', rr, 0);
    assert.equal(b.update([member(1), member(2)]), true);
    assert.equal(b.update([member(2), member(1)]), false);
    assert.equal(b.update([member(2, { weight: 3 }), member(1)]), true);
  });

  it('reports a strategy that throws and answers no candidates instead of crashing', () => {
    const errors: Error[] = [];
    const b = new ServiceBalancer('s', { label: 'broken', factory: () => ({ candidates: () => { throw new Error('boom'); } }), options: {} }, 0);
    b.onStrategyError = (e) => errors.push(e);
    b.update([member(1)]);
    assert.deepEqual(b.candidates(), []);
    assert.equal(errors[0]!.message, 'boom');
  });

  it('cuts a strategy answer to distinct members of its snapshot', () => {
    const errors: Error[] = [];
    const b = new ServiceBalancer('s', { label: 'sloppy', factory: (env) => ({ candidates: () => [env.backends[0]!, env.backends[0]!, { ...env.backends[1]! }] }), options: {} }, 2);
    b.onStrategyError = (e) => errors.push(e);
    b.update([member(1), member(2)]);
    assert.deepEqual(b.candidates().map((x) => x.port), [1]);
    assert.equal(errors.length, 1);
  });
});
