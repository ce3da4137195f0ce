/** Plain-text output of the CLI: aligned tables and progress on stderr. */

export type Cell = string | number | boolean | null | undefined;

/** `2025-05-01T10:00:00.000Z` → `2025-05-01 10:00:00Z`; null → `-`. */
export function when(iso: string | null | undefined): string {
  if (!iso) return '-';
  return iso.replace('T', ' ').replace(/\.\d+Z$/, 'Z');
}

function text(v: Cell): string {
  if (v === null || v === undefined || v === '') return '-';
  return String(v).replace(/\s+/g, ' ');
}

/** An aligned table with a header row; the last column is never padded. */
export function table(headers: string[], rows: Cell[][]): string {
  const cells = rows.map((r) => r.map(text));
  const widths = headers.map((h, i) => Math.max(h.length, ...cells.map((r) => r[i]?.length ?? 0)));
  const line = (r: string[]) =>
    r
      .map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(headers), ...cells.map(line)].join('\n') + '\n';
}

export const plural = (n: number, one: string, many = `${one}s`): string => `${n} ${n === 1 ? one : many}`;

/**
 * Progress of a long command on stderr (stdout stays clean for --json): a
 * line rewritten in place on a terminal, otherwise a line at each quarter.
 */
export function progress(label: string, stream: NodeJS.WriteStream = process.stderr) {
  let lastQuarter = -1;
  return (done: number, total: number) => {
    if (total <= 0) return;
    if (stream.isTTY) {
      stream.write(`\r${label} ${done}/${total}${done >= total ? '\n' : ''}`);
      return;
    }
    const quarter = Math.floor((done * 4) / total);
    if (quarter > lastQuarter) {
      lastQuarter = quarter;
      stream.write(`${label} ${done}/${total}\n`);
    }
  };
}

/** Seconds as the two largest units: `45s`, `12m 5s`, `3h 20m`, `6d 4h`. */
export function duration(seconds: number): string {
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
  if (s < 86_400) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
  return `${Math.floor(s / 86_400)}d ${Math.floor((s % 86_400) / 3600)}h`;
}
