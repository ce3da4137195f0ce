/**
 * `tsx bench/explain.ts <dump.json>`: where the time and the requests of a
 * pipeline run went, from the raw data `npm run bench:pipeline -- --dump FILE`
 * writes (webhook events from Postgres, the simulator's request log, the
 * queue's jobs). Prints, per trace: a 5-second timeline (webhooks received,
 * requests sent, backlog, latency of what finished), how long fetch jobs
 * waited in the queue and then held their slot (mostly waiting for a permit),
 * how many fetches each document took, the longest silences in the request
 * log (a 429 pause shows here) and the slowest events.
 */
import { readFileSync } from 'node:fs';
import { percentile } from '../dev/stats.js';

interface Dump {
  trace: string;
  startedAt: number;
  events: Array<{ id: string; user_id: string; data_type: string; object_id: string; event_type: string; r: string; p: string | null }>;
  requests: Array<{ t: number; path: string; status: number }>;
  jobs: Array<{ eventId: number; added: number; processedOn?: number; finishedOn?: number; returnvalue: unknown }>;
}

const file = process.argv[2];
if (!file) {
  process.stderr.write('usage: tsx bench/explain.ts <dump.json from npm run bench:pipeline -- --dump FILE>\n');
  process.exit(2);
}
const dumps = JSON.parse(readFileSync(file, 'utf8')) as Dump[];
const sec = (ms: number) => (Number.isFinite(ms) ? `${(ms / 1000).toFixed(1)} s` : '-');
const dist = (v: number[]) =>
  v.length ? `p50 ${sec(percentile(v, 50))}, p90 ${sec(percentile(v, 90))}, p99 ${sec(percentile(v, 99))}, max ${sec(Math.max(...v))} (n=${v.length})` : 'none';

for (const d of dumps) {
  const t0 = d.startedAt;
  const events = d.events.map((e) => ({ ...e, r: Number(e.r), p: e.p === null ? null : Number(e.p) }));
  const ids = new Set(events.map((e) => Number(e.id)));
  const jobs = d.jobs.filter((j) => ids.has(j.eventId));
  const data = d.requests.filter((r) => r.path.startsWith('/v2/usercollection') && r.status !== 429);
  process.stdout.write(`\n=== ${d.trace}\n`);

  // Timeline.
  const end = Math.max(...events.map((e) => e.p ?? e.r));
  process.stdout.write('   from  webhooks  requests  backlog  latency of events done (p50 / max)\n');
  for (let t = t0; t < end + 1; t += 5000) {
    const inBucket = (x: number) => x >= t && x < t + 5000;
    const done = events.filter((e) => e.p !== null && inBucket(e.p)).map((e) => e.p! - e.r);
    process.stdout.write(
      `${sec(t - t0).padStart(7)}  ${String(events.filter((e) => inBucket(e.r)).length).padStart(8)}  ${String(d.requests.filter((r) => inBucket(r.t)).length).padStart(8)}  ` +
        `${String(events.filter((e) => e.r < t + 5000 && (e.p === null || e.p >= t + 5000)).length).padStart(7)}  ${sec(percentile(done, 50))} / ${done.length ? sec(Math.max(...done)) : '-'}\n`,
    );
  }

  // Jobs.
  const outcomes: Record<string, number> = {};
  for (const j of jobs) outcomes[String(j.returnvalue)] = (outcomes[String(j.returnvalue)] ?? 0) + 1;
  const served = jobs.filter((j) => j.returnvalue === 'served' && j.processedOn && j.finishedOn);
  process.stdout.write(`jobs by outcome: ${JSON.stringify(outcomes)}\n`);
  process.stdout.write(`fetch jobs, queued before a worker took them: ${dist(served.map((j) => j.processedOn! - j.added))}\n`);
  process.stdout.write(`fetch jobs, slot held (permit wait + fetch + write): ${dist(served.map((j) => j.finishedOn! - j.processedOn!))}\n`);

  // Fetches per document.
  const fetches = new Map<string, number>();
  for (const r of data) {
    const parts = r.path.split('/');
    if (parts.length > 4) fetches.set(parts[4]!, (fetches.get(parts[4]!) ?? 0) + 1);
  }
  const perDoc = new Map<string, number>();
  for (const e of events) perDoc.set(e.object_id, (perDoc.get(e.object_id) ?? 0) + 1);
  const grid: Record<string, number> = {};
  for (const [id, n] of perDoc) {
    const k = `${n} events → ${fetches.get(id) ?? 0} single reads`;
    grid[k] = (grid[k] ?? 0) + 1;
  }
  process.stdout.write(`documents by events and single-document reads (collection reads: ${data.length - [...fetches.values()].reduce((a, b) => a + b, 0)}):\n`);
  for (const k of Object.keys(grid).sort()) process.stdout.write(`  ${k}: ${grid[k]}\n`);

  // Silences and 429s.
  const times = d.requests.map((r) => r.t).sort((a, b) => a - b);
  const gaps = times.slice(1).map((t, i) => ({ gap: t - times[i]!, at: times[i]! - t0 }));
  gaps.sort((a, b) => b.gap - a.gap);
  process.stdout.write(`longest silences in the request log: ${gaps.slice(0, 3).map((g) => `${sec(g.gap)} after ${sec(g.at)}`).join(', ')}\n`);
  const refused = d.requests.filter((r) => r.status === 429);
  if (refused.length) process.stdout.write(`429s at: ${refused.map((r) => sec(r.t - t0)).join(', ')}\n`);

  // Slowest events.
  const slow = events.filter((e) => e.p !== null).sort((a, b) => b.p! - b.r - (a.p! - a.r)).slice(0, 3);
  for (const e of slow) {
    const j = jobs.find((x) => x.eventId === Number(e.id));
    process.stdout.write(
      `slow: event ${e.id} ${e.event_type} ${e.data_type} received at ${sec(e.r - t0)}, done after ${sec(e.p! - e.r)}; its job ${String(j?.returnvalue)}, ` +
        `queued ${j?.processedOn ? sec(j.processedOn - j.added) : '?'}, held ${j?.processedOn && j.finishedOn ? sec(j.finishedOn - j.processedOn) : '?'}\n`,
    );
  }
}
