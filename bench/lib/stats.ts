/** Summaries over rounds: the median with the smallest and largest value. */

/** Median, min and max of one figure over the rounds. */
export interface Spread {
  median: number;
  min: number;
  max: number;
}

/** The median (mean of the two middle values for an even count); NaN for none. */
export function median(values: readonly number[]): number {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  const mid = v.length >> 1;
  return v.length % 2 ? v[mid]! : (v[mid - 1]! + v[mid]!) / 2;
}

/** Median, min and max of the finite values. */
export function spread(values: readonly number[]): Spread {
  const v = values.filter((x) => Number.isFinite(x));
  if (v.length === 0) return { median: NaN, min: NaN, max: NaN };
  return { median: median(v), min: Math.min(...v), max: Math.max(...v) };
}

/** Sum of the values. */
export function sum(values: readonly number[]): number {
  return values.reduce((a, b) => a + b, 0);
}
