/**
 * Reading Envoy's ORCA load reports from the `endpoint-load-metrics`
 * response header, in its TEXT form (`TEXT cpu_utilization=0.3,
 * mem_utilization=0.8`) or its JSON form (`JSON {"cpu_utilization":0.3}`).
 * The BIN (protobuf) form is not read.
 */

/** The header backends send their load in. */
export const ORCA_HEADER = 'endpoint-load-metrics';

/**
 * The utilization (0 idle to 1 saturated) an ORCA header reports:
 * `application_utilization` when given (as Envoy prefers it), else
 * `cpu_utilization`. Values above 1 (ORCA allows them for CPU) count as 1.
 * Returns an Error saying what is wrong for anything unreadable, so the
 * caller can log it; never throws.
 */
export function parseOrca(header: string): number | Error {
  const text = header.trim();
  const space = text.indexOf(' ');
  const kind = space < 0 ? text : text.slice(0, space);
  const body = space < 0 ? '' : text.slice(space + 1).trim();
  const fields = new Map<string, number>();
  if (kind === 'TEXT') {
    for (const part of body.split(',')) {
      const m = /^\s*([A-Za-z_][\w.]*)\s*=\s*([0-9]+(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?)\s*$/.exec(part);
      if (!m) return new Error(`unreadable ORCA field "${part.trim().slice(0, 60)}"`);
      fields.set(m[1]!, Number(m[2]));
    }
  } else if (kind === 'JSON') {
    let data: unknown;
    try {
      data = JSON.parse(body);
    } catch {
      return new Error('ORCA JSON is not valid JSON');
    }
    if (typeof data !== 'object' || data === null || Array.isArray(data)) return new Error('ORCA JSON must be an object');
    for (const key of ['application_utilization', 'cpu_utilization']) {
      const v = Object.hasOwn(data, key) ? (data as Record<string, unknown>)[key] : undefined;
      if (typeof v === 'number') fields.set(key, v);
    }
  } else {
    return new Error(`ORCA format "${kind.slice(0, 10)}" is not read (TEXT and JSON are)`);
  }
  const u = fields.get('application_utilization') || fields.get('cpu_utilization');
  if (u === undefined || !Number.isFinite(u) || u < 0) return new Error('ORCA report has no cpu_utilization or application_utilization');
  return Math.min(1, u);
}

/** The weight share (percent of the configured weight) a utilization leaves: its idle part. */
export function idlePercent(utilization: number): number {
  return Math.round((1 - Math.min(1, Math.max(0, utilization))) * 100);
}
