/**
 * Reading one registry member from a znode's data, in each format found in
 * real ZooKeeper deployments (see design.md, "Registry formats").
 *
 * Rules shared by every JSON format, chosen so that one odd writer (a Ruby or
 * Python registrar, a hand-written znode) does not take a live backend out:
 * - Unknown keys are ignored, so newer writers and other tools' extra fields
 *   never make a member unreadable.
 * - An optional key whose value is `null` counts as absent (Nerve always writes
 *   `"weight": null` when none is configured).
 * - Ports, weights and Drover's `maxConnections` are JSON whole numbers or
 *   strings of decimal digits (`"8080"`); anything else (fractions, signs,
 *   spaces, booleans, Infinity from `1e400`) is unreadable. Drover's `load`
 *   (utilization 0-1) is a JSON number or a string of digits with an optional
 *   fraction (`"0.75"`).
 * - Metadata (Drover `meta`, Nerve `labels` and `name`, Curator `id` and
 *   `name`, Finagle `shard`) may be strings, finite numbers or booleans,
 *   stored as text as the config file does; objects and arrays are
 *   unreadable, and so is null inside a map.
 * - Keys are only ever read as own properties, so `__proto__` or `constructor`
 *   in the data cannot reach Object.prototype.
 */
import { parseAddress } from '../config/address.js';
import { DEFAULTS, type Member } from '../config/schema.js';
import { DroverError } from '../errors.js';

/** The `format:` values a ZooKeeper service may name; `auto` detects the format per member. */
export const ZNODE_FORMATS = ['auto', 'drover', 'curator', 'finagle', 'nerve', 'plain'] as const;

/** One of {@link ZNODE_FORMATS}. */
export type ZnodeFormat = (typeof ZNODE_FORMATS)[number];

/**
 * A member read from a registry. `drain: true` (only Drover's own format can
 * carry it) asks the balancer to send the member no new traffic; the key is
 * absent otherwise, never `false`, so drained-or-not compares by presence.
 * Drover's format can also carry the member's own `agentPort`, its `load`
 * (utilization 0-1, as `drover register --report-load` writes it) and its
 * `maxConnections` (at most this many connections or requests at once).
 */
export type RegistryMember = Member & { readonly drain?: boolean };

/** How to read a member. `format` has no default here: the config's default (`auto`) is applied by its caller. */
export interface ParseMemberOptions {
  readonly format: ZnodeFormat;
  /**
   * Finagle only: read `additionalEndpoints[endpoint]` instead of
   * `serviceEndpoint`. Ignored by the other formats, so `auto` can mix them;
   * an empty string means the service endpoint.
   */
  readonly endpoint?: string;
}

/**
 * DROVER_MEMBER_INVALID: a znode's data could not be read as a member. The
 * message says what is wrong but not which znode: the caller adds that.
 * `format` is the format that was being read (the detected one under `auto`,
 * or `auto` when detection itself failed).
 */
export class MemberFormatError extends DroverError {
  declare readonly code: 'DROVER_MEMBER_INVALID';

  constructor(
    readonly format: ZnodeFormat,
    message: string,
  ) {
    super('DROVER_MEMBER_INVALID', `${format === 'auto' ? 'member' : `${format} member`}: ${message}`);
  }
}

/**
 * Reads one member from a znode's `data` in `options.format`.
 *
 * Returns the member (weight defaults to 1), or `null` for a member that is
 * readable but must not take traffic: a Finagle member whose status is not
 * `ALIVE`, or a Curator instance with `"enabled": false`. Throws
 * MemberFormatError for anything unreadable (no data, empty, not UTF-8,
 * malformed JSON, wrong shape or types, bad host or port) and never any other
 * error.
 *
 * `auto`: text not starting with `{` is plain `host:port`; a JSON object with
 * `serviceEndpoint` is Finagle; with `address` and `port` or `sslPort`,
 * Curator; with `host` and `port`, Drover when it has `zone`, `meta`,
 * `drain`, `agentPort`, `load` or `maxConnections`, Nerve when it has `name`
 * or `labels`, else Drover (the two read `host`, `port` and `weight` alike).
 */
export function parseMember(data: Buffer | null, options: ParseMemberOptions): RegistryMember | null {
  const requested = options.format;
  let format: ZnodeFormat = requested;
  try {
    if (!(ZNODE_FORMATS as readonly string[]).includes(requested)) {
      format = 'auto';
      throw new Unreadable(`unknown format ${preview(requested)}`);
    }
    const text = decode(data);
    // Plain text never starts with "{" (an IPv6 plain member starts with "["), so this cannot misroute one.
    if (format === 'auto' && !text.startsWith('{')) format = 'plain';
    if (format === 'plain') return readPlain(text);
    const json = parseJsonObject(text);
    if (format === 'auto') format = detect(json);
    switch (format) {
      case 'drover':
        return readDrover(json);
      case 'nerve':
        return readNerve(json);
      case 'curator':
        return readCurator(json);
      case 'finagle':
        return readFinagle(json, options.endpoint);
      default:
        throw new Unreadable('no format detected');
    }
  } catch (err) {
    if (err instanceof Unreadable) throw new MemberFormatError(format, err.message);
    throw err;
  }
}

/** Thrown inside this module; parseMember turns it into a MemberFormatError naming the format. */
class Unreadable extends Error {}

type JsonObject = Readonly<Record<string, unknown>>;

// fatal: registries hold text; a binary znode should be reported as such, not
// as a JSON error about U+FFFD. The default ignoreBOM: false strips a BOM.
const UTF8 = new TextDecoder('utf-8', { fatal: true });

/** The longest plain text worth showing in full: a 253-character host name, brackets, scheme and port. */
const MAX_PLAIN = 300;

function decode(data: Buffer | null): string {
  if (data === null || data === undefined) throw new Unreadable('the znode has no data');
  if (!(data instanceof Uint8Array)) throw new Unreadable('the znode data is not a buffer');
  let text: string;
  try {
    text = UTF8.decode(data);
  } catch {
    throw new Unreadable(`the data (${data.length} bytes) is not UTF-8 text`);
  }
  text = text.trim();
  if (text === '') throw new Unreadable('the data is empty');
  return text;
}

function detect(o: JsonObject): ZnodeFormat {
  if (has(o, 'serviceEndpoint')) return 'finagle';
  if (has(o, 'address') && (has(o, 'port') || has(o, 'sslPort'))) return 'curator';
  if (has(o, 'host') && has(o, 'port')) {
    if (['zone', 'meta', 'drain', 'agentPort', 'load', 'maxConnections'].some((k) => has(o, k))) return 'drover';
    if (has(o, 'name') || has(o, 'labels')) return 'nerve';
    return 'drover';
  }
  throw new Unreadable(
    'JSON of no known shape: expected {host, port} (Drover, Nerve), {address, port or sslPort} (Curator) or {serviceEndpoint} (Finagle)',
  );
}

function parseJsonObject(text: string): JsonObject {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new Unreadable(`not valid JSON (${(err as Error).message})`);
  }
  if (!isObject(value)) throw new Unreadable(`expected a JSON object, got ${describe(value)}`);
  return value;
}

function readPlain(text: string): RegistryMember {
  if (text.length > MAX_PLAIN) throw new Unreadable(`${text.length} characters is too long for host:port`);
  const address = parseAddress(text);
  if (typeof address === 'string') throw new Unreadable(address);
  return { host: address.host, port: address.port, weight: DEFAULTS.member.weight };
}

function readDrover(o: JsonObject): RegistryMember {
  const { host, port } = readHostPort(o, '');
  const weight = readWeight(get(o, 'weight'), 'weight');
  const zone = optionalString(get(o, 'zone'), 'zone');
  const meta = readStringMap(get(o, 'meta'), 'meta');
  const drain = get(o, 'drain');
  if (drain !== undefined && drain !== null && typeof drain !== 'boolean') {
    throw new Unreadable(`drain must be true or false, got ${preview(drain)}`);
  }
  const agentPortValue = get(o, 'agentPort');
  const agentPort = agentPortValue === undefined || agentPortValue === null ? undefined : readPort(agentPortValue, 'agentPort');
  const load = readLoad(get(o, 'load'));
  const maxConnections = readMaxConnections(get(o, 'maxConnections'));
  return {
    host,
    port,
    weight,
    // An empty zone is no zone, as in the config file.
    ...(zone ? { zone } : {}),
    ...(meta ? { meta } : {}),
    ...(drain === true ? { drain } : {}),
    ...(agentPort !== undefined ? { agentPort } : {}),
    ...(load !== undefined ? { load } : {}),
    ...(maxConnections !== undefined ? { maxConnections } : {}),
  };
}

/** Drover's `maxConnections`: a whole number 1-1000000, as in the config file; null is absent (no limit). */
function readMaxConnections(value: unknown): number | undefined {
  if (value === undefined || value === null) return undefined;
  const n = wholeNumber(value);
  if (n === undefined || n < 1 || n > 1_000_000) throw new Unreadable(`maxConnections must be a whole number 1-1000000, got ${preview(value)}`);
  return n;
}

/**
 * Drover's `load`: utilization from 0 (idle) to 1 (saturated); null is
 * absent. Above 1 counts as 1 (ORCA allows CPU above 1, and a reporter
 * overshooting must not take its member out).
 */
function readLoad(value: unknown): number | undefined {
  if (value === undefined || value === null) return undefined;
  const n = typeof value === 'number' ? value : typeof value === 'string' && /^\d{1,10}(\.\d{1,20})?$/.test(value) ? Number(value) : NaN;
  if (!(Number.isFinite(n) && n >= 0)) throw new Unreadable(`load must be a number from 0 to 1, got ${preview(value)}`);
  return n === 0 ? 0 : Math.min(1, n);
}

function readNerve(o: JsonObject): RegistryMember {
  const { host, port } = readHostPort(o, '');
  const weight = readWeight(get(o, 'weight'), 'weight');
  const labels = readStringMap(get(o, 'labels'), 'labels');
  // `name` is Nerve's instance_id, which YAML may have made a number.
  const name = optionalScalar(get(o, 'name'), 'name');
  // The name field wins over a label of the same name: it is what Nerve itself reports.
  const meta = withEntries(labels, [['name', name]]);
  return { host, port, weight, ...(meta ? { meta } : {}) };
}

function readCurator(o: JsonObject): RegistryMember | null {
  const address = get(o, 'address');
  if (address === undefined || address === null) throw new Unreadable('address is missing');
  const port = get(o, 'port');
  const sslPort = get(o, 'sslPort');
  let chosen: number;
  // The plain port wins when both are set: Drover connects without TLS unless told otherwise.
  if (port !== undefined && port !== null) chosen = readPort(port, 'port');
  else if (sslPort !== undefined && sslPort !== null) chosen = readPort(sslPort, 'sslPort');
  else throw new Unreadable('port and sslPort are both missing or null');
  const host = readHost(address, chosen, 'address');
  const enabled = get(o, 'enabled');
  if (enabled !== undefined && enabled !== null && typeof enabled !== 'boolean') {
    throw new Unreadable(`enabled must be true or false, got ${preview(enabled)}`);
  }
  const meta = withEntries(undefined, [
    ['id', optionalScalar(get(o, 'id'), 'id')],
    ['name', optionalScalar(get(o, 'name'), 'name')],
  ]);
  // Curator's own EnabledInstanceFilter skips disabled instances; so does Drover.
  if (enabled === false) return null;
  return { host, port: chosen, weight: DEFAULTS.member.weight, ...(meta ? { meta } : {}) };
}

function readFinagle(o: JsonObject, endpoint: string | undefined): RegistryMember | null {
  let ep: unknown;
  let where: string;
  if (endpoint) {
    const additional = get(o, 'additionalEndpoints');
    if (additional !== undefined && additional !== null && !isObject(additional)) {
      throw new Unreadable(`additionalEndpoints must be an object, got ${describe(additional)}`);
    }
    ep = additional ? get(additional, endpoint) : undefined;
    if (ep === undefined) {
      const names = additional ? Object.keys(additional) : [];
      throw new Unreadable(
        `no additional endpoint ${preview(endpoint)} (it has ${names.length ? names.map((n) => preview(n)).join(', ') : 'none'})`,
      );
    }
    where = `additionalEndpoints.${endpoint}.`;
  } else {
    ep = get(o, 'serviceEndpoint');
    where = 'serviceEndpoint.';
  }
  if (!isObject(ep)) throw new Unreadable(`${where.slice(0, -1)} must be an object with host and port, got ${describe(ep)}`);
  const { host, port } = readHostPort(ep, where);
  const shard = optionalScalar(get(o, 'shard'), 'shard');
  const status = get(o, 'status');
  // Finagle always writes a status; a member without one is not one it wrote.
  if (status === undefined || status === null) throw new Unreadable('status is missing');
  if (typeof status !== 'string') throw new Unreadable(`status must be a string such as "ALIVE", got ${preview(status)}`);
  // Case-sensitive, as Finagle's own reader; DEAD, STARTING, STOPPING, STOPPED, WARNING take no traffic.
  if (status !== 'ALIVE') return null;
  const meta = withEntries(undefined, [['shard', shard]]);
  return { host, port, weight: DEFAULTS.member.weight, ...(meta ? { meta } : {}) };
}

function readHostPort(o: JsonObject, where: string): { host: string; port: number } {
  const port = readPort(get(o, 'port'), `${where}port`);
  return { host: readHost(get(o, 'host'), port, `${where}host`), port };
}

/** Validates through parseAddress so JSON hosts obey exactly the rules of config and plain members. */
function readHost(value: unknown, port: number, what: string): string {
  if (value === undefined || value === null) throw new Unreadable(`${what} is missing`);
  if (typeof value !== 'string') throw new Unreadable(`${what} must be a string, got ${preview(value)}`);
  let host = value.trim();
  // Accept "[::1]" as well as "::1": both are seen from hand-written registrations.
  if (host.startsWith('[') && host.endsWith(']') && host.includes(':')) host = host.slice(1, -1);
  const bad = `${what} ${preview(value)} is not a valid IP address or host name`;
  // Without the brackets, a host like "10.0.0.1:80" or "http://x" would be split at its own colon.
  const address = host.length <= MAX_PLAIN ? parseAddress(host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`) : bad;
  if (typeof address === 'string') throw new Unreadable(bad);
  return address.host;
}

function readPort(value: unknown, what: string): number {
  if (value === undefined || value === null) throw new Unreadable(`${what} is missing`);
  const n = wholeNumber(value);
  if (n === undefined || n < 1 || n > 65535) throw new Unreadable(`${what} must be a whole number 1-65535, got ${preview(value)}`);
  return n;
}

function readWeight(value: unknown, what: string): number {
  if (value === undefined || value === null) return DEFAULTS.member.weight;
  const n = wholeNumber(value);
  if (n === undefined || n < 0 || n > 1000) throw new Unreadable(`${what} must be a whole number 0-1000, got ${preview(value)}`);
  return n;
}

function wholeNumber(value: unknown): number | undefined {
  // Digit strings only: "0x50", " 80", "8e1" and "80.0" are what Number() would also accept.
  const n = typeof value === 'number' ? value : typeof value === 'string' && /^\d{1,10}$/.test(value) ? Number(value) : undefined;
  if (n === undefined || !Number.isSafeInteger(n)) return undefined;
  return n === 0 ? 0 : n; // -0 from JSON "-0" would otherwise print as 0 yet compare oddly with Object.is.
}

function optionalString(value: unknown, what: string): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string') throw new Unreadable(`${what} must be a string, got ${preview(value)}`);
  return value;
}

/** A metadata scalar as text: strings, finite numbers and booleans; null is absent. */
function optionalScalar(value: unknown, what: string): string | undefined {
  if (value === undefined || value === null) return undefined;
  const text = scalarText(value);
  if (text === undefined) throw new Unreadable(`${what} must be a string or a number, got ${describe(value)}`);
  return text;
}

function scalarText(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if ((typeof value === 'number' && Number.isFinite(value)) || typeof value === 'boolean') return String(value);
  return undefined;
}

function readStringMap(value: unknown, what: string): Record<string, string> | undefined {
  if (value === undefined || value === null) return undefined;
  if (!isObject(value)) throw new Unreadable(`${what} must be an object of strings, got ${describe(value)}`);
  const entries: [string, string][] = [];
  for (const [key, v] of Object.entries(value)) {
    const text = scalarText(v);
    if (text === undefined) throw new Unreadable(`${what}.${key} must be a string, number or boolean, got ${describe(v)}`);
    entries.push([key, text]);
  }
  return entries.length ? Object.fromEntries(entries) : undefined;
}

/** `base` plus the defined entries (later ones win); undefined when nothing is left. */
function withEntries(
  base: Record<string, string> | undefined,
  extra: readonly (readonly [string, string | undefined])[],
): Record<string, string> | undefined {
  // Object.fromEntries defines own properties, so a "__proto__" key stays a plain key.
  const entries = [...Object.entries(base ?? {}), ...extra.filter((e): e is readonly [string, string] => e[1] !== undefined)];
  return entries.length ? Object.fromEntries(entries) : undefined;
}

function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function has(o: JsonObject, key: string): boolean {
  return Object.hasOwn(o, key);
}

function get(o: JsonObject, key: string): unknown {
  return Object.hasOwn(o, key) ? o[key] : undefined;
}

/** A short description of a JSON value for messages: its type, and the value when short. */
function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'object') return 'an object';
  return preview(value);
}

/** The value as JSON, cut to 60 characters, so one huge znode cannot flood the log. */
function preview(value: unknown): string {
  const text = typeof value === 'number' && !Number.isFinite(value) ? String(value) : (JSON.stringify(value) ?? String(value));
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}
