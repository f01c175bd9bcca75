import { isIPv4, isIPv6 } from 'node:net';

/** The 12-byte signature that opens every PROXY protocol v2 header. */
export const V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);

/** The two ends of the client's connection, as the proxy saw them. */
export interface ConnectionEnds {
  sourceAddress?: string;
  sourcePort?: number;
  destinationAddress?: string;
  destinationPort?: number;
}

/**
 * The PROXY protocol header (HAProxy's `send-proxy` / `send-proxy-v2`) that
 * tells a backend the real client address. IPv4-mapped IPv6 addresses
 * (`::ffff:1.2.3.4`) are sent as IPv4 when both ends are IPv4; mixed
 * families are sent as IPv6. Unknown ends give `PROXY UNKNOWN` (v1) or a
 * LOCAL command (v2), which backends accept and ignore.
 */
export function proxyHeader(version: 'v1' | 'v2', ends: ConnectionEnds): Buffer {
  const pair = normalise(ends);
  if (version === 'v1') {
    if (!pair) return Buffer.from('PROXY UNKNOWN\r\n', 'latin1');
    const [src, dst] = pair.addresses;
    return Buffer.from(`PROXY TCP${pair.family} ${src} ${dst} ${pair.ports[0]} ${pair.ports[1]}\r\n`, 'latin1');
  }
  if (!pair) return Buffer.concat([V2_SIGNATURE, Buffer.from([0x20, 0x00, 0x00, 0x00])]);
  const size = pair.family === 4 ? 4 : 16;
  const body = Buffer.alloc(size * 2 + 4);
  pair.addresses.forEach((a, i) => ipBytes(a, pair.family).copy(body, i * size));
  body.writeUInt16BE(pair.ports[0], size * 2);
  body.writeUInt16BE(pair.ports[1], size * 2 + 2);
  const head = Buffer.from([0x21, pair.family === 4 ? 0x11 : 0x21, 0, 0]);
  head.writeUInt16BE(body.length, 2);
  return Buffer.concat([V2_SIGNATURE, head, body]);
}

interface Pair {
  family: 4 | 6;
  addresses: [string, string];
  ports: [number, number];
}

function normalise(e: ConnectionEnds): Pair | undefined {
  const { sourceAddress: s, destinationAddress: d, sourcePort: sp, destinationPort: dp } = e;
  if (!s || !d || sp === undefined || dp === undefined) return undefined;
  const s4 = asIPv4(s);
  const d4 = asIPv4(d);
  if (s4 && d4) return { family: 4, addresses: [s4, d4], ports: [sp, dp] };
  const s6 = isIPv6(s) ? s : s4 ? `::ffff:${s4}` : undefined;
  const d6 = isIPv6(d) ? d : d4 ? `::ffff:${d4}` : undefined;
  if (!s6 || !d6) return undefined;
  return { family: 6, addresses: [s6, d6], ports: [sp, dp] };
}

function asIPv4(a: string): string | undefined {
  if (isIPv4(a)) return a;
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(a);
  return m && isIPv4(m[1]!) ? m[1] : undefined;
}

function ipBytes(a: string, family: 4 | 6): Buffer {
  if (family === 4) return Buffer.from(a.split('.').map(Number));
  // Expand `::` and an embedded IPv4 tail into eight 16-bit groups.
  let text = a;
  const tail = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (tail) {
    const [p, q, r, s] = tail[1]!.split('.').map(Number) as [number, number, number, number];
    text = text.slice(0, -tail[1]!.length) + `${((p << 8) | q).toString(16)}:${((r << 8) | s).toString(16)}`;
  }
  const [head, rest] = text.split('::') as [string, string | undefined];
  const left = head ? head.split(':') : [];
  const right = rest ? rest.split(':') : [];
  const groups = rest === undefined ? left : [...left, ...Array(8 - left.length - right.length).fill('0'), ...right];
  const out = Buffer.alloc(16);
  groups.forEach((g, i) => out.writeUInt16BE(parseInt(g, 16), i * 2));
  return out;
}
