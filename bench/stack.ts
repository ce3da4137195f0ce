/**
 * The benchmarks' stack: dev/stack.ts with the service as deployed (one api
 * process and N worker processes; through tsx, or compiled as the image runs
 * them with `built`), users connected through a setup api that spends none of
 * the measured budget, and what a benchmark reads on top: process CPU and
 * memory from /proc.
 */
import type { ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import type { RateLimit } from '../src/config.js';
import { serviceNodeOptions } from '../dev/deployment.js';
import { builtRuntime, compileService, tsxRuntime } from '../dev/service.js';
import { startStack } from '../dev/stack.js';

export const SECRETS = {
  OURA_CLIENT_ID: 'bench-client-id',
  OURA_CLIENT_SECRET: 'bench-client-secret-0123456789',
  OURA_WEBHOOK_VERIFICATION_TOKEN: 'bench-verification-token',
  TOKEN_ENCRYPTION_KEY: Buffer.alloc(32, 9).toString('base64'),
  ADMIN_TOKEN: 'bench-admin-token-0123456789',
};

/** A `--limit N/W` option. */
export function parseLimit(s: string, name: string): RateLimit {
  const m = /^\s*(\d+)\s*\/\s*(\d+)\s*$/.exec(s);
  if (!m || Number(m[1]) < 1 || Number(m[2]) < 1) throw new Error(`--${name}: expected N/W, e.g. 300/30 (got "${s}")`);
  return { limit: Number(m[1]), windowS: Number(m[2]) };
}

/** CPU seconds (user + system) a process has used so far; null once it is gone. */
export function processCpuS(pid: number | undefined): number | null {
  if (!pid) return null;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in USER_HZ (100 on Linux)
  } catch {
    return null;
  }
}

/** Resident set size now and its high-water mark (bytes), from /proc; null once the process is gone. */
export function memoryOf(pid: number | undefined): { rss: number; hwm: number } | null {
  if (!pid) return null;
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN) * 1024;
    return { rss: kb('VmRSS'), hwm: kb('VmHWM') };
  } catch {
    return null;
  }
}

/**
 * Samples the RSS of each process every `intervalMs` from now until `stop`,
 * which gives, per role, the largest RSS any of its processes had when
 * sampling began and the largest seen since (bytes).
 */
export function sampleRss(children: ReadonlyArray<{ role: string; child: ChildProcess }>, intervalMs = 100) {
  const before = new Map<string, number>();
  const peak = new Map<string, number>();
  const take = (into: Map<string, number>) => {
    for (const { role, child } of children) {
      const rss = memoryOf(child.pid)?.rss;
      if (rss !== undefined && rss > (into.get(role) ?? 0)) into.set(role, rss);
    }
  };
  take(before);
  const timer = setInterval(() => take(peak), intervalMs);
  return {
    stop(): Map<string, { before: number; peak: number }> {
      clearInterval(timer);
      take(peak);
      return new Map([...before].map(([role, b]) => [role, { before: b, peak: Math.max(b, peak.get(role) ?? 0) }]));
    },
  };
}

/** Machine-wide CPU counters (jiffies): busy and total, from /proc/stat. */
export function machineCpu(): { busy: number; total: number } | null {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n')[0]!;
    const v = line.trim().split(/\s+/).slice(1).map(Number);
    const total = v.reduce((a, b) => a + b, 0);
    const idle = (v[3] ?? 0) + (v[4] ?? 0);
    return { busy: total - idle, total };
  } catch {
    return null;
  }
}

export interface BenchStackOptions {
  limit: RateLimit;
  workers: number;
  workerConcurrency?: number;
  logLevel: string;
  /** Admin connection (creates and drops the benchmark's database). */
  adminDatabaseUrl: string;
  redisUrl: string;
  /** Service settings over the defaults below (e.g. BACKFILL_DAYS). */
  env?: Record<string, string>;
  /**
   * Run the api and workers as the image does (compiled by tsc, with
   * NODE_ENV=production and each service's NODE_OPTIONS from
   * docker-compose.yml) instead of through tsx; `log` reports the compile.
   */
  built?: { log: (msg: string) => void; nodeFlags?: Partial<Record<'api' | 'worker', string[]>> };
}

export async function startBenchStack(opts: BenchStackOptions) {
  // First, while nothing else is open: tsc blocks this process for a while.
  const runtime = opts.built
    ? builtRuntime(compileService('bench-stack', opts.built.log), {
        nodeFlags: {
          api: [...serviceNodeOptions('api'), ...(opts.built.nodeFlags?.api ?? [])],
          worker: [...serviceNodeOptions('worker'), ...(opts.built.nodeFlags?.worker ?? [])],
        },
        env: { NODE_ENV: 'production' },
      })
    : tsxRuntime();
  const stack = await startStack({
    label: 'bench',
    services: { adminDatabaseUrl: opts.adminDatabaseUrl, redisUrl: opts.redisUrl },
    secrets: SECRETS,
    // No limit while users connect; the budget is set before the traces.
    sim: { appLimit: null },
    env: {
      OURA_APP_RATE_LIMIT: `${opts.limit.limit}/${opts.limit.windowS}`,
      // The webhook pipeline alone: no historical load on connect, no periodic re-sync
      // (both run at background priority on the same budget and would blur the counts).
      BACKFILL_DAYS: '0',
      RECONCILE_INTERVAL_S: String(30 * 86_400),
      ...(opts.workerConcurrency ? { WORKER_CONCURRENCY: String(opts.workerConcurrency) } : {}),
      ...opts.env,
    },
    api: 'process',
    workers: opts.workers,
    runtime,
    logLevel: opts.logLevel,
    setupApi: true,
    stop: 'graceful',
  });
  return { ...stack, queue: stack.deps.queue };
}
export type BenchStack = Awaited<ReturnType<typeof startBenchStack>>;
