import type { Queue, Worker } from 'bullmq';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { withTimeout } from './timeout.js';

/**
 * Prometheus metrics of one process. A registry per instance (not the global
 * one), so tests can build several apps in one process.
 */
export function createMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'oura_ingest_' });
  const ouraRequests = new Counter({
    name: 'oura_ingest_oura_requests_total',
    help: 'Requests sent to the Oura API, by purpose (live, backfill, timeseries, reconcile, token, subscriptions), route, HTTP status and rate-limit tier of a 429',
    labelNames: ['purpose', 'route', 'status', 'tier'] as const,
    registers: [registry],
  });
  const eventsProcessed = new Counter({
    name: 'oura_ingest_events_processed_total',
    help: 'Webhook events finished by the worker, by outcome',
    labelNames: ['outcome'] as const,
    registers: [registry],
  });
  const eventRequests = new Counter({
    name: 'oura_ingest_event_fetch_requests_total',
    help: 'Oura requests spent serving webhook events',
    registers: [registry],
  });
  new Gauge({
    name: 'oura_ingest_events_per_request',
    help: 'Webhook events served per Oura request spent on them (higher is thriftier), since process start',
    registers: [registry],
    async collect() {
      const events = (await eventsProcessed.get()).values.reduce((a, v) => a + v.value, 0);
      const requests = (await eventRequests.get()).values.reduce((a, v) => a + v.value, 0);
      this.set(requests > 0 ? events / requests : 0);
    },
  });
  const rateLimited = new Counter({
    name: 'oura_ingest_oura_429_total',
    help: '429 answers from Oura, by tier',
    labelNames: ['tier'] as const,
    registers: [registry],
  });
  const limiterWait = new Histogram({
    name: 'oura_ingest_limiter_wait_seconds',
    help: 'Time spent waiting for a rate-limit permit, by limiter lane (live, backfill, timeseries, reconcile)',
    labelNames: ['lane'] as const,
    buckets: [0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300],
    registers: [registry],
  });
  const tokenRefreshes = new Counter({
    name: 'oura_ingest_token_refreshes_total',
    help: 'Access-token refreshes, by result',
    labelNames: ['result'] as const,
    registers: [registry],
  });
  const deliveries = new Counter({
    name: 'oura_ingest_webhook_deliveries_total',
    help: 'Webhook deliveries, by outcome: accepted, ignored, refused_<reason> (the api); duplicate (the intake worker: accepted deliveries that repeated a recorded event)',
    labelNames: ['outcome'] as const,
    registers: [registry],
  });
  const unqueued = new Counter({
    name: 'oura_ingest_webhook_events_unqueued_total',
    help: 'Recorded webhook deliveries the api could not queue (Redis failed or fell behind); the sweeper admits them after SWEEP_GRACE_S',
    registers: [registry],
  });
  const ingestLatency = new Histogram({
    name: 'oura_ingest_ingest_latency_seconds',
    help: 'Webhook received → its document written (or removed) in Postgres',
    buckets: [0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 900],
    registers: [registry],
  });
  const jobs = new Counter({
    name: 'oura_ingest_jobs_total',
    help: 'Jobs finished, by queue and outcome (completed, failed, retried)',
    labelNames: ['queue', 'outcome'] as const,
    registers: [registry],
  });
  const jobDuration = new Histogram({
    name: 'oura_ingest_job_duration_seconds',
    help: 'Time a job ran, by queue',
    labelNames: ['queue'] as const,
    buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300],
    registers: [registry],
  });
  const partnerWebhookAttempts = new Counter({
    name: 'oura_ingest_partner_webhook_attempts_total',
    help: 'Outbound webhook attempts to PARTNER_WEBHOOK_URL, by outcome: delivered (2xx), failed (retried later), dead (failed, and was the last attempt)',
    labelNames: ['outcome'] as const,
    registers: [registry],
  });
  return { registry, partnerWebhookAttempts, ingestLatency, jobs, jobDuration, ouraRequests, eventsProcessed, eventRequests, rateLimited, limiterWait, tokenRefreshes, deliveries, unqueued };
}
export type Metrics = ReturnType<typeof createMetrics>;


/** Counts a worker's job outcomes and durations. */
export function observeWorker(metrics: Metrics, worker: Worker, queue: string): void {
  worker.on('completed', (job) => {
    metrics.jobs.inc({ queue, outcome: 'completed' });
    if (job.processedOn && job.finishedOn) metrics.jobDuration.observe({ queue }, (job.finishedOn - job.processedOn) / 1000);
  });
  worker.on('failed', (job) => {
    const final = job ? job.attemptsMade >= (job.opts.attempts ?? 1) : true;
    metrics.jobs.inc({ queue, outcome: final ? 'failed' : 'retried' });
    if (job?.processedOn && job.finishedOn) metrics.jobDuration.observe({ queue }, (job.finishedOn - job.processedOn) / 1000);
  });
}

/**
 * Gauges read at scrape time: queue depth and age of the oldest waiting job
 * per queue, backfill progress, and seconds since the last webhook.
 */
export function registerCollectors(
  metrics: Metrics,
  sources: {
    queues: Record<string, Queue>;
    backfillProgress: () => Promise<Array<{ status: string; windows_done: number; windows_total: number; user_id: string }>>;
    lastWebhookAt: () => Promise<Date | null>;
    /** Work waiting by purpose (src/budget/report.ts). */
    budgetBacklog: () => Promise<Record<string, { items: number; oldestWaitS: number | null }>>;
    usersByStatus: () => Promise<Record<string, number>>;
    /** Outbound webhook messages pending and dead (zero when outbound webhooks are off and none were ever made). */
    partnerWebhooks: () => Promise<{ pending: number; oldestPendingS: number | null; dead: number }>;
    /** The /readyz checks (Postgres, Redis, migrations). */
    readiness: () => Promise<Record<string, boolean>>;
    /** Settings alert rules compare against (FRESHNESS_TARGET_S, OURA_APP_RATE_LIMIT). */
    settings: { freshnessTargetS: number; budgetPerS: number };
  },
): void {
  const { registry } = metrics;
  const scrapeTimeout = <T>(p: Promise<T>) => withTimeout(p, 2000, 'metrics scrape');
  new Gauge({
    name: 'oura_ingest_queue_jobs',
    help: 'Jobs in each queue by state',
    labelNames: ['queue', 'state'] as const,
    registers: [registry],
    async collect() {
      this.reset();
      for (const [name, q] of Object.entries(sources.queues)) {
        try {
          const counts = await scrapeTimeout(q.getJobCounts('waiting', 'prioritized', 'delayed', 'active', 'failed'));
          for (const [state, n] of Object.entries(counts)) this.set({ queue: name, state }, n);
        } catch {
          /* Redis down: no figure rather than a wrong one */
        }
      }
    },
  });
  new Gauge({
    name: 'oura_ingest_queue_oldest_waiting_seconds',
    help: 'Age of the oldest job waiting to run, per queue (0 when none)',
    labelNames: ['queue'] as const,
    registers: [registry],
    async collect() {
      this.reset();
      for (const [name, q] of Object.entries(sources.queues)) {
        try {
          const jobs = await scrapeTimeout(q.getJobs(['waiting', 'prioritized'], 0, 0, true));
          const oldest = jobs.reduce((min, j) => Math.min(min, j.timestamp), Date.now());
          this.set({ queue: name }, (Date.now() - oldest) / 1000);
        } catch {
          /* Redis down */
        }
      }
    },
  });
  new Gauge({
    name: 'oura_ingest_backfill_windows',
    help: 'Backfill windows over every user and data type, by state (done, total) for backfills running or finished',
    labelNames: ['state'] as const,
    registers: [registry],
    async collect() {
      this.reset();
      try {
        const rows = await scrapeTimeout(sources.backfillProgress());
        this.set({ state: 'done' }, rows.reduce((a, r) => a + r.windows_done, 0));
        this.set({ state: 'total' }, rows.reduce((a, r) => a + r.windows_total, 0));
      } catch {
        /* Postgres down */
      }
    },
  });
  new Gauge({
    name: 'oura_ingest_backfills_running',
    help: 'Users whose backfill is still running',
    registers: [registry],
    async collect() {
      try {
        const rows = await scrapeTimeout(sources.backfillProgress());
        this.set(new Set(rows.filter((r) => r.status === 'running').map((r) => r.user_id)).size);
      } catch {
        /* Postgres down */
      }
    },
  });
  /** One read of `source` serves every gauge of a scrape that asks for it within a second. */
  const perScrape = <T>(source: () => Promise<T>) => {
    let last: { at: number; value: Promise<T> } | null = null;
    return () => {
      if (!last || Date.now() - last.at > 1000) last = { at: Date.now(), value: scrapeTimeout(source()) };
      return last.value;
    };
  };
  const budgetBacklog = perScrape(() => sources.budgetBacklog());
  /** A gauge without labels, set at each scrape from `read` (no figure when its store is down). */
  const scraped = (name: string, help: string, read: () => Promise<number>) =>
    new Gauge({
      name,
      help,
      registers: [registry],
      async collect() {
        try {
          this.set(await read());
        } catch {
          /* Postgres or Redis down */
        }
      },
    });
  /** A gauge of one label, set at each scrape from `read` (no figure when its store is down, rather than a wrong one). */
  const labelled = <L extends string>(name: string, help: string, label: L, read: () => Promise<Record<string, number>>) =>
    new Gauge({
      name,
      help,
      labelNames: [label],
      registers: [registry],
      async collect() {
        this.reset();
        try {
          for (const [value, n] of Object.entries(await read())) this.set({ [label]: value } as Record<L, string>, n);
        } catch {
          /* Postgres or Redis down */
        }
      },
    });
  const mapValues = <T>(o: Record<string, T>, f: (v: T) => number) => Object.fromEntries(Object.entries(o).map(([k, v]) => [k, f(v)]));
  labelled(
    'oura_ingest_budget_backlog',
    'Work waiting, by purpose: live = webhook events queued, backfill = windows left, timeseries and reconcile = active users past their target interval',
    'purpose',
    async () => mapValues(await budgetBacklog(), (b) => b.items),
  );
  labelled(
    'oura_ingest_budget_oldest_wait_seconds',
    'How long the oldest waiting work has waited, by purpose (timeseries and reconcile: how far the user most behind is past the target; 0 when none)',
    'purpose',
    async () => mapValues(await budgetBacklog(), (b) => b.oldestWaitS ?? 0),
  );
  labelled('oura_ingest_users', 'Connected users by status (active, reauth_required, revoked)', 'status', () => scrapeTimeout(sources.usersByStatus()));
  labelled('oura_ingest_ready', 'What /readyz says, by check (postgres, redis, migrations): 1 passing, 0 failing', 'check', async () =>
    mapValues(await sources.readiness(), (ok) => (ok ? 1 : 0)),
  );
  const partnerStats = perScrape(() => sources.partnerWebhooks());
  scraped('oura_ingest_partner_webhook_pending', 'Outbound webhook messages not yet delivered to PARTNER_WEBHOOK_URL (being retried included; dead letters not)', async () => (await partnerStats()).pending);
  scraped(
    'oura_ingest_partner_webhook_oldest_pending_seconds',
    'How long ago the change behind the oldest undelivered outbound webhook message happened (0 when none)',
    async () => (await partnerStats()).oldestPendingS ?? 0,
  );
  scraped('oura_ingest_partner_webhook_dead', 'Outbound webhook messages dead-lettered after their last attempt, until replayed or deleted by retention', async () => (await partnerStats()).dead);
  new Gauge({
    name: 'oura_ingest_freshness_target_seconds',
    help: 'FRESHNESS_TARGET_S: how long a live event may wait before it is served',
    registers: [registry],
  }).set(sources.settings.freshnessTargetS);
  new Gauge({
    name: 'oura_ingest_budget_requests_per_second',
    help: 'The application budget (OURA_APP_RATE_LIMIT) as requests per second, for comparing with the rate of oura_ingest_oura_requests_total',
    registers: [registry],
  }).set(sources.settings.budgetPerS);
  scraped('oura_ingest_seconds_since_last_webhook', 'Seconds since the newest webhook delivery was recorded (-1: none yet); alert when large while users are active', async () => {
    const last = await scrapeTimeout(sources.lastWebhookAt());
    return last ? (Date.now() - last.getTime()) / 1000 : -1;
  });
}
