// Presenting a per-rate evaluation: a text table, and an SVG of the accuracy/cost
// trade-off (accuracy on the left axis, cost relative to rate 1 on the right,
// rate along the bottom).
import type { EvalRow } from './evaluate.js';

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

export function rateTradeoffSvg(rows: readonly EvalRow[], title: string): string {
  const width = 640;
  const height = 400;
  const m = { left: 64, right: 72, top: 48, bottom: 56 };
  const pw = width - m.left - m.right;
  const ph = height - m.top - m.bottom;
  const sorted = [...rows].sort((a, b) => a.rate - b.rate);
  const fullMacs = Math.max(...sorted.map((r) => r.macs), 1);
  const accs = sorted.map((r) => 100 * r.accuracy);
  const lo = Math.max(0, Math.floor(Math.min(...accs) / 5) * 5 - 5);
  const hi = Math.min(100, Math.ceil(Math.max(...accs) / 5) * 5 + 1);
  const x = (rate: number) => m.left + rate * pw;
  const yAcc = (a: number) => m.top + ph - ((a - lo) / Math.max(1e-9, hi - lo)) * ph;
  const yCost = (c: number) => m.top + ph - c * ph;
  const parts: string[] = [];
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`);
  parts.push(`<rect width="${width}" height="${height}" fill="white"/>`);
  parts.push(`<text x="${width / 2}" y="24" text-anchor="middle" font-size="15">${esc(title)}</text>`);
  parts.push(`<rect x="${m.left}" y="${m.top}" width="${pw}" height="${ph}" fill="none" stroke="#999"/>`);
  for (let i = 0; i <= 4; i++) {
    const rate = i / 4;
    parts.push(`<line x1="${x(rate)}" y1="${m.top + ph}" x2="${x(rate)}" y2="${m.top + ph + 5}" stroke="#999"/>`);
    parts.push(`<text x="${x(rate)}" y="${m.top + ph + 18}" text-anchor="middle">${rate.toFixed(2)}</text>`);
    const a = lo + ((hi - lo) * i) / 4;
    parts.push(`<text x="${m.left - 8}" y="${yAcc(a) + 4}" text-anchor="end" fill="#1f5fbf">${a.toFixed(1)}</text>`);
    parts.push(`<text x="${m.left + pw + 8}" y="${yCost(i / 4) + 4}" fill="#c0392b">${(i / 4).toFixed(2)}</text>`);
    parts.push(`<line x1="${m.left}" y1="${yCost(i / 4)}" x2="${m.left + pw}" y2="${yCost(i / 4)}" stroke="#eee"/>`);
  }
  parts.push(`<text x="${x(0.5)}" y="${height - 12}" text-anchor="middle">slice rate r</text>`);
  parts.push(`<text transform="translate(16 ${m.top + ph / 2}) rotate(-90)" text-anchor="middle" fill="#1f5fbf">accuracy (%)</text>`);
  parts.push(`<text transform="translate(${width - 14} ${m.top + ph / 2}) rotate(90)" text-anchor="middle" fill="#c0392b">MACs relative to rate 1</text>`);
  const accPts = sorted.map((r) => `${x(r.rate).toFixed(1)},${yAcc(100 * r.accuracy).toFixed(1)}`).join(' ');
  const costPts = sorted.map((r) => `${x(r.rate).toFixed(1)},${yCost(r.macs / fullMacs).toFixed(1)}`).join(' ');
  parts.push(`<polyline points="${costPts}" fill="none" stroke="#c0392b" stroke-width="2" stroke-dasharray="6 4"/>`);
  parts.push(`<polyline points="${accPts}" fill="none" stroke="#1f5fbf" stroke-width="2.5"/>`);
  for (const r of sorted) {
    parts.push(`<circle cx="${x(r.rate)}" cy="${yAcc(100 * r.accuracy)}" r="4" fill="#1f5fbf"><title>rate ${r.rate}: ${(100 * r.accuracy).toFixed(2)}%</title></circle>`);
    parts.push(`<circle cx="${x(r.rate)}" cy="${yCost(r.macs / fullMacs)}" r="3.5" fill="#c0392b"><title>rate ${r.rate}: ${r.macs} MACs</title></circle>`);
    parts.push(`<text x="${x(r.rate)}" y="${yAcc(100 * r.accuracy) - 9}" text-anchor="middle" fill="#1f5fbf">${(100 * r.accuracy).toFixed(1)}</text>`);
  }
  parts.push(`<g transform="translate(${m.left + 12} ${m.top + 14})"><line x1="0" y1="0" x2="24" y2="0" stroke="#1f5fbf" stroke-width="2.5"/><text x="30" y="4">accuracy</text>`);
  parts.push(`<line x1="110" y1="0" x2="134" y2="0" stroke="#c0392b" stroke-width="2" stroke-dasharray="6 4"/><text x="140" y="4">cost (MACs / MACs at r = 1)</text></g>`);
  parts.push('</svg>');
  return parts.join('\n');
}

/** The per-rate table the CLI and the examples print: accuracy, loss, MACs, parameters, relative cost. */
export function formatRateTable(rows: readonly EvalRow[]): string {
  const full = rows.find((r) => r.rate === 1) ?? rows[0];
  const lines = ['rate    accuracy     loss      MACs/input     params   cost vs r=1'];
  for (const r of rows) {
    lines.push(
      `${r.rate.toFixed(3).padEnd(6)} ${(100 * r.accuracy).toFixed(2).padStart(8)} %  ${r.loss.toFixed(4).padStart(7)}  ${String(r.macs).padStart(13)}  ${String(r.params).padStart(9)}   ${(r.macs / full.macs).toFixed(3)}`,
    );
  }
  return lines.join('\n');
}
