import { isAlias, isMap, isScalar, isSeq, Scalar, type Document, type LineCounter, type Node, type Pair } from 'yaml';
import type { ConfigProblem } from '../errors.js';
import { parseDuration } from '../../strategies/index.js';

/** A YAML node that may be absent. */
export type MaybeNode = Node | null | undefined;

/**
 * Reads values out of a parsed YAML document and records every problem with
 * its `file:line:column`, instead of stopping at the first one: users fix a
 * config in one pass. Each reader returns undefined after reporting.
 */
export class Reader {
  readonly problems: ConfigProblem[] = [];

  constructor(
    readonly file: string,
    private readonly doc: Document,
    private readonly lines: LineCounter,
  ) {}

  /** Records a problem at `node` (or at the start of the file when there is none). */
  report(node: MaybeNode, path: string, message: string): void {
    const offset = node?.range?.[0] ?? 0;
    const { line, col } = this.lines.linePos(offset);
    this.problems.push({ file: this.file, line, column: col, path, message });
  }

  /** Follows `*alias` references so every reader sees the real node. */
  resolve(node: MaybeNode): MaybeNode {
    return isAlias(node) ? (node.resolve(this.doc) as MaybeNode) : node;
  }

  /**
   * A mapping whose keys must all be in `known`. Unknown keys are reported at
   * the key itself, with the nearest known key as a hint.
   */
  map(node: MaybeNode, path: string, known: readonly string[] | null): Map<string, Pair<Node, Node>> | undefined {
    node = this.resolve(node);
    if (!isMap(node)) {
      this.report(node, path, `expected a mapping, got ${describe(node)}`);
      return undefined;
    }
    const out = new Map<string, Pair<Node, Node>>();
    for (const pair of node.items as Pair<Node, Node>[]) {
      const keyNode = pair.key;
      const key = isScalar(keyNode) && typeof keyNode.value === 'string' ? keyNode.value : undefined;
      const keyPath = join(path, key ?? '?');
      if (key === undefined) {
        this.report(keyNode, path, `keys must be strings, got ${describe(keyNode)} (quote it)`);
      } else if (known && !known.includes(key)) {
        const near = nearest(key, known);
        this.report(keyNode, keyPath, `unknown key${near ? ` (did you mean "${near}"?)` : ''}; known keys: ${known.join(', ')}`);
      } else {
        // `key:` with nothing after it: give the empty value the key's
        // position, so "got nothing" points at the right line.
        if (pair.value === null || pair.value === undefined) {
          const empty = new Scalar(null);
          empty.range = keyNode.range;
          pair.value = empty;
        }
        out.set(key, pair);
      }
    }
    return out;
  }

  /** A sequence's items. */
  seq(node: MaybeNode, path: string): Node[] | undefined {
    node = this.resolve(node);
    if (!isSeq(node)) {
      this.report(node, path, `expected a list, got ${describe(node)}`);
      return undefined;
    }
    return node.items as Node[];
  }

  /** A non-empty string scalar. */
  string(node: MaybeNode, path: string): string | undefined {
    node = this.resolve(node);
    if (isScalar(node) && typeof node.value === 'string' && node.value.trim() !== '') return node.value.trim();
    this.report(node, path, `expected a non-empty string, got ${describe(node)}`);
    return undefined;
  }

  /** An integer in [min, max]. */
  integer(node: MaybeNode, path: string, min: number, max: number): number | undefined {
    node = this.resolve(node);
    if (isScalar(node) && typeof node.value === 'number' && Number.isInteger(node.value)) {
      if (node.value >= min && node.value <= max) return node.value;
    }
    this.report(node, path, `expected a whole number from ${min} to ${max}, got ${describe(node)}`);
    return undefined;
  }

  /** A duration string (`500ms`, `2s`, `1m`, `1h`) in milliseconds. */
  duration(node: MaybeNode, path: string): number | undefined {
    node = this.resolve(node);
    const ms = isScalar(node) ? parseDuration(node.value) : undefined;
    if (ms !== undefined) return ms;
    this.report(node, path, `expected a duration like 500ms, 2s or 1m (at most 596h), got ${describe(node)}`);
    return undefined;
  }

  /** One of a fixed set of strings. */
  oneOf<T extends string>(node: MaybeNode, path: string, values: readonly T[]): T | undefined {
    node = this.resolve(node);
    if (isScalar(node) && values.includes(node.value as T)) return node.value as T;
    this.report(node, path, `expected one of ${values.join(', ')}, got ${describe(node)}`);
    return undefined;
  }

  /** Plain data (options maps): the node as JavaScript values. */
  data(node: MaybeNode): unknown {
    node = this.resolve(node);
    return node ? node.toJSON(this.doc) : undefined;
  }
}

/** `a.b` for maps, keeping `[0]` suffixes tight. */
export function join(path: string, key: string | number): string {
  if (typeof key === 'number') return `${path}[${key}]`;
  return path ? `${path}.${key}` : key;
}

/** How a node looks to the user, for "expected X, got Y". */
export function describe(node: MaybeNode): string {
  if (node === null || node === undefined) return 'nothing';
  if (isMap(node)) return 'a mapping';
  if (isSeq(node)) return 'a list';
  if (isScalar(node)) {
    const v = node.value;
    if (v === null) return 'null';
    if (typeof v === 'string') return `"${v}"`;
    return `${typeof v} ${String(v)}`;
  }
  return 'an unsupported value';
}

/** The known key closest to a typo, if it is close enough to be a likely typo. */
function nearest(key: string, known: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const k of known) {
    const d = distance(key.toLowerCase(), k.toLowerCase());
    if (d < bestDistance) {
      best = k;
      bestDistance = d;
    }
  }
  return bestDistance <= Math.max(2, Math.floor(key.length / 3)) ? best : undefined;
}

function distance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = tmp;
    }
  }
  return row[b.length]!;
}
