import type { Backend } from '../../strategies/index.js';
import { formatAddress } from '../config/address.js';
import type { Member } from '../config/schema.js';

/**
 * Builds an immutable snapshot from a full member list: one backend per id
 * (the last duplicate wins), sorted by id so every strategy sees a stable order.
 */
export function buildBackendSet(members: readonly Member[]): readonly Backend[] {
  const byId = new Map<string, Backend>();
  for (const m of members) {
    const id = formatAddress(m.host, m.port);
    byId.set(
      id,
      Object.freeze({
        id,
        host: m.host,
        port: m.port,
        weight: m.weight,
        ...(m.zone ? { zone: m.zone } : {}),
        meta: Object.freeze({ ...(m.meta ?? {}) }),
      }),
    );
  }
  return Object.freeze([...byId.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)));
}

/** Whether two snapshots describe the same backends, so a rebuild can be skipped. */
export function sameBackendSet(a: readonly Backend[], b: readonly Backend[]): boolean {
  if (a.length !== b.length) return false;
  return a.every((x, i) => {
    const y = b[i]!;
    return x.id === y.id && x.weight === y.weight && x.zone === y.zone && sameMeta(x.meta, y.meta);
  });
}

function sameMeta(a: Readonly<Record<string, string>>, b: Readonly<Record<string, string>>): boolean {
  const ka = Object.keys(a);
  return ka.length === Object.keys(b).length && ka.every((k) => a[k] === b[k]);
}
