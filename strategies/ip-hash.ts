import { createHash } from 'node:crypto';
import type { Backend, StrategyFactory } from './types.js';
import { eligible } from './shared/eligible.js';
import { Options } from './shared/options.js';

/** Ring points per unit of weight, as nginx `hash ... consistent` and ketama use. */
const POINTS_PER_WEIGHT = 160;
/** Upper bound on ring size, so large weights do not make building slow. */
const MAX_POINTS = 1 << 20;

/**
 * ip-hash: consistent hashing (a ketama ring) on the client address. Removing
 * one of N backends moves only the clients that were on it (about 1/N); an
 * unusable backend falls through to the next point on the ring, so its
 * clients spread over the others while everybody else stays put.
 * The ring depends on ids and configured weights only: live weight changes
 * (agent reports, slow start) do not reshuffle clients. Options: none.
 * A pick without a client address starts at a random point.
 */
export const create: StrategyFactory = (env) => {
  new Options(env.options, []);
  const list = env.backends;
  const ring = buildRing(list);
  return {
    candidates(ctx) {
      const n = ring.points.length;
      if (n === 0) return [];
      const key = ctx.clientAddress === undefined ? Math.floor(env.random() * 2 ** 32) : hash32(ctx.clientAddress);
      const out: Backend[] = [];
      const seen = new Uint8Array(list.length);
      let seenCount = 0;
      for (let k = 0, i = firstAtOrAfter(ring.points, key); k < n; k++, i = (i + 1) % n) {
        const owner = ring.owners[i]!;
        if (seen[owner]) continue;
        seen[owner] = 1;
        seenCount++;
        const b = list[owner]!;
        if (eligible(env, b)) {
          out.push(b);
          if (out.length >= ctx.limit) break;
        }
        if (seenCount === ring.members) break;
      }
      return out;
    },
  };
};

interface Ring {
  points: Uint32Array;
  owners: Uint32Array;
  /** Number of distinct backends with points. */
  members: number;
}

function buildRing(list: readonly Backend[]): Ring {
  const weights = list.map((b) => Math.max(0, Math.floor(b.weight)));
  const divisor = weights.reduce((g, w) => (w > 0 ? gcd(g, w) : g), 0) || 1;
  const units = weights.reduce((s, w) => s + w / divisor, 0);
  const scale = units * POINTS_PER_WEIGHT > MAX_POINTS ? MAX_POINTS / (units * POINTS_PER_WEIGHT) : 1;
  const entries: Array<[number, number]> = [];
  let members = 0;
  list.forEach((b, index) => {
    const count = Math.round((weights[index]! / divisor) * POINTS_PER_WEIGHT * scale);
    if (count > 0) members++;
    // Four points per md5 digest, as ketama does.
    for (let d = 0; d * 4 < count; d++) {
      const digest = createHash('md5').update(`${b.id}-${d}`).digest();
      for (let j = 0; j < 4 && d * 4 + j < count; j++) entries.push([digest.readUInt32LE(j * 4), index]);
    }
  });
  entries.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  const points = new Uint32Array(entries.length);
  const owners = new Uint32Array(entries.length);
  entries.forEach(([p, o], i) => {
    points[i] = p;
    owners[i] = o;
  });
  return { points, owners, members };
}

function gcd(a: number, b: number): number {
  while (b) [a, b] = [b, a % b];
  return a;
}

/** First 32 bits of md5: the same hash as the ring points, well spread for IP strings. */
function hash32(text: string): number {
  return createHash('md5').update(text).digest().readUInt32LE(0);
}

function firstAtOrAfter(points: Uint32Array, key: number): number {
  let lo = 0;
  let hi = points.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (points[mid]! < key) lo = mid + 1;
    else hi = mid;
  }
  return lo === points.length ? 0 : lo;
}
