/** Small, dependency-free statistics for the benchmarks. */

/** Nearest-rank percentile (p in 0..100) of unsorted values; NaN when empty. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1]!;
}

/**
 * The most timestamps in any rolling window of `windowMs` (a window holds
 * t with start ≤ t < start + windowMs), and when that window starts.
 */
export function maxInRollingWindow(times: readonly number[], windowMs: number): { max: number; at: number | null } {
  const t = [...times].sort((a, b) => a - b);
  let best = 0;
  let at: number | null = null;
  let lo = 0;
  for (let hi = 0; hi < t.length; hi++) {
    while (t[hi]! - t[lo]! >= windowMs) lo++;
    if (hi - lo + 1 > best) {
      best = hi - lo + 1;
      at = t[lo]!;
    }
  }
  return { max: best, at };
}

/** JSON with object keys sorted, so two equal documents compare equal whatever their key order. */
export function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (v && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    return `{${Object.keys(o)
      .filter((k) => o[k] !== undefined)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical(o[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(v);
}
