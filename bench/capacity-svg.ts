/**
 * The day at a glance, as an SVG written by hand (no plotting dependency):
 * budget use by purpose (stacked, as a share of the budget) per bin of the
 * simulated day, and the live backlog (events waiting) as a line over it.
 */

export const PURPOSE_COLOURS: Record<string, string> = {
  live: '#1f77b4',
  token: '#9467bd',
  subscriptions: '#7f7f7f',
  backfill: '#ff7f0e',
  timeseries: '#2ca02c',
  reconcile: '#d62728',
  other: '#bcbd22',
};

export interface PlotInput {
  title: string;
  /** Bin width in simulated hours. */
  binH: number;
  /** Per bin: requests by purpose, as a share of the budget of the bin (1 = all of it). */
  bins: Array<Record<string, number>>;
  /** Live backlog samples: simulated hour → events waiting. */
  backlog: Array<{ h: number; queued: number }>;
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

export function budgetSvg(p: PlotInput): string {
  const W = 900;
  const H = 420;
  const left = 60;
  const right = 70;
  const top = 40;
  const bottom = 70;
  const pw = W - left - right;
  const ph = H - top - bottom;
  const hours = 24;
  const x = (h: number) => left + (h / hours) * pw;
  // Shares above 150 % (a bin where a scrape came late) are cut at the top.
  const maxShare = Math.min(1.5, Math.max(1.1, ...p.bins.map((b) => Object.values(b).reduce((a, v) => a + v, 0))));
  const y = (share: number) => top + ph - (Math.min(share, maxShare) / maxShare) * ph;
  const maxQ = Math.max(1, ...p.backlog.map((b) => b.queued));
  const yq = (q: number) => top + ph - (q / maxQ) * ph;
  const purposes = Object.keys(PURPOSE_COLOURS).filter((k) => p.bins.some((b) => (b[k] ?? 0) > 0));
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="11">`);
  out.push(`<rect width="${W}" height="${H}" fill="white"/>`);
  out.push(`<text x="${W / 2}" y="20" text-anchor="middle" font-size="14">${esc(p.title)}</text>`);
  // Bars.
  p.bins.forEach((b, i) => {
    let acc = 0;
    for (const k of purposes) {
      const v = b[k] ?? 0;
      if (v <= 0) continue;
      const x0 = x(i * p.binH);
      const w = Math.max(0.5, x((i + 1) * p.binH) - x0 - 1);
      out.push(`<rect x="${x0.toFixed(1)}" y="${y(acc + v).toFixed(1)}" width="${w.toFixed(1)}" height="${(y(acc) - y(acc + v)).toFixed(1)}" fill="${PURPOSE_COLOURS[k]}"/>`);
      acc += v;
    }
  });
  // Axes and grid: share of the budget on the left, hours along the bottom.
  for (let s = 0; s <= maxShare + 1e-9; s += 0.25) {
    out.push(`<line x1="${left}" x2="${left + pw}" y1="${y(s).toFixed(1)}" y2="${y(s).toFixed(1)}" stroke="#ddd"/>`);
    out.push(`<text x="${left - 6}" y="${(y(s) + 4).toFixed(1)}" text-anchor="end">${Math.round(s * 100)}%</text>`);
  }
  out.push(`<line x1="${left}" x2="${left + pw}" y1="${y(1).toFixed(1)}" y2="${y(1).toFixed(1)}" stroke="black" stroke-dasharray="4 3"/>`);
  out.push(`<text x="${left + pw - 4}" y="${(y(1) - 4).toFixed(1)}" text-anchor="end">budget</text>`);
  for (let h = 0; h <= hours; h += 3) {
    out.push(`<line x1="${x(h).toFixed(1)}" x2="${x(h).toFixed(1)}" y1="${top + ph}" y2="${top + ph + 4}" stroke="black"/>`);
    out.push(`<text x="${x(h).toFixed(1)}" y="${top + ph + 16}" text-anchor="middle">${String(h).padStart(2, '0')}:00</text>`);
  }
  out.push(`<text x="${left + pw / 2}" y="${top + ph + 32}" text-anchor="middle">simulated time of day (UTC)</text>`);
  out.push(`<text transform="translate(16 ${top + ph / 2}) rotate(-90)" text-anchor="middle">requests, share of the budget</text>`);
  out.push(`<line x1="${left}" x2="${left}" y1="${top}" y2="${top + ph}" stroke="black"/>`);
  out.push(`<line x1="${left}" x2="${left + pw}" y1="${top + ph}" y2="${top + ph}" stroke="black"/>`);
  // Backlog line, right axis.
  if (p.backlog.length > 1) {
    const pts = p.backlog.filter((b) => b.h >= 0 && b.h <= hours).map((b) => `${x(b.h).toFixed(1)},${yq(b.queued).toFixed(1)}`);
    out.push(`<polyline points="${pts.join(' ')}" fill="none" stroke="black" stroke-width="1.2"/>`);
    out.push(`<line x1="${left + pw}" x2="${left + pw}" y1="${top}" y2="${top + ph}" stroke="black"/>`);
    for (const q of [0, maxQ / 2, maxQ]) {
      out.push(`<text x="${left + pw + 6}" y="${(yq(q) + 4).toFixed(1)}">${Math.round(q)}</text>`);
    }
    out.push(`<text transform="translate(${W - 14} ${top + ph / 2}) rotate(90)" text-anchor="middle">live events waiting (line)</text>`);
  }
  // Legend.
  purposes.forEach((k, i) => {
    const lx = left + i * 110;
    out.push(`<rect x="${lx}" y="${H - 22}" width="12" height="12" fill="${PURPOSE_COLOURS[k]}"/>`);
    out.push(`<text x="${lx + 16}" y="${H - 12}">${esc(k)}</text>`);
  });
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}
