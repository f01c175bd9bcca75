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
 * (agent reports) do not reshuffle clients. Slow start hands a ramping
 * backend a growing, fixed part of its clients: a client stays when its
 * hash with the backend falls below the ramp factor, and otherwise falls
 * through, so clients move once as the ramp rises, never back and forth.
 * Options: none.
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
      let ramping: Backend[] | undefined;
      const seen = new Uint8Array(list.length);
      let seenCount = 0;
      for (let k = 0, i = firstAtOrAfter(ring.points, key); k < n; k++, i = (i + 1) % n) {
        const owner = ring.owners[i]!;
        if (seen[owner]) continue;
        seen[owner] = 1;
        seenCount++;
        const b = list[owner]!;
        if (eligible(env, b)) {
          const ramp = env.state.ramp(b.id);
          if (ramp >= 1 || mix32(key ^ fnv1a(b.id)) < ramp * 2 ** 32) out.push(b);
          else (ramping ??= []).push(b);
          if (out.length >= ctx.limit) break;
        }
        if (seenCount === ring.members) break;
      }
      // Ramping backends that let this client pass stay last-resort candidates.
      for (const b of ramping ?? []) if (out.length < ctx.limit) out.push(b);
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
  const counts = list.map((b) => Math.min(MAX_POINTS_PER_BACKEND, Math.round(Math.max(0, b.weight) * POINTS_PER_WEIGHT)));
  const total = counts.reduce((a, b) => a + b, 0);
  // Each entry packs (point, owner) into one exact float64, so one native
  // numeric sort orders the ring: 100 backends at weight 16 build in ~0.1 s.
  const packed = new Float64Array(total);
  let k = 0;
  list.forEach((b, owner) => {
    const base = fnv1a(b.id);
    for (let i = 0; i < counts[owner]!; i++) packed[k++] = mix32(base + Math.imul(i + 1, 0x9e3779b9)) * OWNER_SLOTS + owner;
  });
  packed.sort();
  const points = new Uint32Array(total);
  const owners = new Uint32Array(total);
  for (let i = 0; i < total; i++) {
    const owner = packed[i]! % OWNER_SLOTS;
    owners[i] = owner;
    points[i] = (packed[i]! - owner) / OWNER_SLOTS;
  }
  return { points, owners, members: counts.filter((c) => c > 0).length };
}

/** Room for owner indexes below each 32-bit point: 2^20 backends, and 2^52 stays exact. */
const OWNER_SLOTS = 2 ** 20;

/** 32-bit FNV-1a of a string's UTF-16 code units. */
function fnv1a(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** murmur3's finaliser: spreads nearby inputs over the whole 32-bit range. */
function mix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** The ring position of a client address. */
function hash32(text: string): number {
  return mix32(fnv1a(text));
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
