import { createHash } from 'node:crypto';
import type { Backend, StrategyFactory } from './types.js';
import { eligible } from './shared/eligible.js';
import { Options } from './shared/options.js';

/**
 * Ring points per unit of weight. nginx uses 160; with so few points one of
 * five equal backends often owns 23% of the ring instead of 20%, so Drover
 * uses 1000 (each backend's share within about 1% of its due).
 */
export const POINTS_PER_WEIGHT = 1000;
/**
 * Points of one backend at most (weight 16): keeps the ring small and quick to
 * build. A backend's points depend on its own weight only, never on the
 * others', or a registry change would rescale and reshuffle everybody.
 */
export const MAX_POINTS_PER_BACKEND = 16 * POINTS_PER_WEIGHT;

/**
 * ip-hash: consistent hashing (a ketama ring) on the client address. Removing
 * one of N backends moves only the clients that were on it (about 1/N); an
 * unusable backend falls through to the next point on the ring, so its
 * clients spread over the others while everybody else stays put.
 * Weights above 16 count as 16 here (see MAX_POINTS_PER_BACKEND).
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
  const entries: Array<[number, number]> = [];
  let members = 0;
  list.forEach((b, index) => {
    const count = Math.min(MAX_POINTS_PER_BACKEND, Math.round(Math.max(0, b.weight) * POINTS_PER_WEIGHT));
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
