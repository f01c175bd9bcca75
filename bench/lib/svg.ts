/**
 * The chart: grouped bars drawn as SVG text (no browser, no library). One panel per payload
 * and figure (requests/s on top, p99 latency below), one bar per target with a whisker from
 * the smallest to the largest round, and the median written on the bar.
 */
import type { Spread } from './stats.js';

/** One bar: a target's median and range in one panel. */
export interface Bar {
  label: string;
  color: string;
  value: Spread;
  /** Drawn hatched: the load generator saturated, so the bar may show the generator's limit. */
  saturated?: boolean;
}

/** A panel: a title and its bars (same order and colours in every panel). */
export interface Panel {
  title: string;
  unit: string;
  bars: Bar[];
}

/** Colours for up to 15 targets (colour-blind friendly first). */
export const PALETTE = ['#4c4c4c', '#1f77b4', '#6baed6', '#08519c', '#ff7f0e', '#fdae6b', '#2ca02c', '#98df8a', '#d62728', '#ff9896', '#9467bd', '#8c564b', '#e377c2', '#17becf', '#bcbd22'];

function esc(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** A round axis maximum at or above `max` whose quarters (the grid lines) are round too. */
function niceMax(max: number): number {
  if (!(max > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(max));
  for (const m of [1, 1.2, 1.6, 2, 2.4, 3.2, 4, 6, 8, 10]) if (m * p >= max * 1.0001) return m * p;
  return 10 * p;
}

function short(n: number): string {
  if (!Number.isFinite(n)) return '-';
  if (n >= 10_000) return `${(n / 1000).toFixed(n >= 100_000 ? 0 : 1)}k`;
  if (n >= 100) return String(Math.round(n));
  if (n >= 10) return n.toFixed(1);
  return n.toFixed(2);
}

/**
 * Draws `rows` of panels (each row the same number of panels) with a legend of the first
 * panel's bars, a title and a footer line (the machine).
 */
export function chart(title: string, footer: string[], rows: Panel[][]): string {
  const cols = Math.max(...rows.map((r) => r.length));
  const bars = rows[0]?.[0]?.bars ?? [];
  // Wide enough for every bar's median label (8 px text, up to 5 characters).
  const panelW = Math.max(330, 60 + bars.length * 26);
  const panelH = 230;
  const gap = 20;
  const left = 20;
  const top = 50;
  const legendRows = Math.ceil(bars.length / 3);
  const width = left * 2 + cols * panelW + (cols - 1) * gap;
  const height = top + rows.length * (panelH + gap) + legendRows * 18 + 20 + footer.length * 15 + 10;
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="Helvetica, Arial, sans-serif" font-size="11">`,
    `<defs><pattern id="hatch" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)"><rect width="6" height="6" fill="white" fill-opacity="0"/><line x1="0" y1="0" x2="0" y2="6" stroke="white" stroke-width="2" stroke-opacity="0.7"/></pattern></defs>`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="${left}" y="24" font-size="16" font-weight="bold">${esc(title)}</text>`,
  );
  rows.forEach((row, ri) => {
    row.forEach((panel, ci) => {
      const x0 = left + ci * (panelW + gap);
      const y0 = top + ri * (panelH + gap);
      const plotTop = y0 + 22;
      const plotBottom = y0 + panelH - 10;
      const plotLeft = x0 + 42;
      const plotRight = x0 + panelW - 6;
      const max = niceMax(Math.max(...panel.bars.map((b) => (Number.isFinite(b.value.max) ? b.value.max : 0))));
      const yOf = (v: number) => plotBottom - (Math.max(0, v) / max) * (plotBottom - plotTop);
      out.push(`<text x="${x0}" y="${y0 + 12}" font-weight="bold">${esc(panel.title)}</text>`);
      out.push(`<text x="${plotRight}" y="${y0 + 12}" text-anchor="end" fill="#555">${esc(panel.unit)}</text>`);
      for (let t = 0; t <= 4; t++) {
        const v = (max * t) / 4;
        const y = yOf(v);
        out.push(`<line x1="${plotLeft}" x2="${plotRight}" y1="${y.toFixed(1)}" y2="${y.toFixed(1)}" stroke="#e5e5e5"/>`);
        out.push(`<text x="${plotLeft - 4}" y="${(y + 3).toFixed(1)}" text-anchor="end" fill="#555">${short(v)}</text>`);
      }
      const slot = (plotRight - plotLeft) / Math.max(1, panel.bars.length);
      const bw = Math.max(4, slot * 0.78);
      panel.bars.forEach((bar, i) => {
        const bx = plotLeft + i * slot + (slot - bw) / 2;
        const v = bar.value.median;
        if (!Number.isFinite(v)) return;
        const y = yOf(v);
        out.push(`<rect x="${bx.toFixed(1)}" y="${y.toFixed(1)}" width="${bw.toFixed(1)}" height="${(plotBottom - y).toFixed(1)}" fill="${bar.color}"><title>${esc(`${bar.label}: ${short(v)} ${panel.unit} (min ${short(bar.value.min)}, max ${short(bar.value.max)})${bar.saturated ? ' - load generator saturated' : ''}`)}</title></rect>`);
        if (bar.saturated) out.push(`<rect x="${bx.toFixed(1)}" y="${y.toFixed(1)}" width="${bw.toFixed(1)}" height="${(plotBottom - y).toFixed(1)}" fill="url(#hatch)"/>`);
        if (Number.isFinite(bar.value.min) && Number.isFinite(bar.value.max)) {
          const cx = bx + bw / 2;
          const y1 = yOf(bar.value.min);
          const y2 = yOf(bar.value.max);
          out.push(`<line x1="${cx.toFixed(1)}" x2="${cx.toFixed(1)}" y1="${y1.toFixed(1)}" y2="${y2.toFixed(1)}" stroke="#000" stroke-width="1"/>`);
          for (const yy of [y1, y2]) out.push(`<line x1="${(cx - 3).toFixed(1)}" x2="${(cx + 3).toFixed(1)}" y1="${yy.toFixed(1)}" y2="${yy.toFixed(1)}" stroke="#000"/>`);
        }
        const ty = Math.min(y - 3, yOf(bar.value.max) - 3);
        out.push(`<text x="${(bx + bw / 2).toFixed(1)}" y="${Math.max(plotTop - 2, ty).toFixed(1)}" text-anchor="middle" font-size="8" fill="#333">${short(v)}</text>`);
      });
      out.push(`<line x1="${plotLeft}" x2="${plotRight}" y1="${plotBottom}" y2="${plotBottom}" stroke="#999"/>`);
    });
  });
  const ly = top + rows.length * (panelH + gap);
  const colW = (width - 2 * left) / 3;
  bars.forEach((bar, i) => {
    const lx = left + (i % 3) * colW;
    const y = ly + Math.floor(i / 3) * 18;
    out.push(`<rect x="${lx}" y="${y}" width="12" height="12" fill="${bar.color}"/>`);
    out.push(`<text x="${lx + 18}" y="${y + 10}">${esc(bar.label)}</text>`);
  });
  const fy = ly + legendRows * 18 + 16;
  footer.forEach((line, i) => out.push(`<text x="${left}" y="${fy + i * 15}" fill="#555">${esc(line)}</text>`));
  out.push('</svg>');
  return out.join('\n') + '\n';
}
