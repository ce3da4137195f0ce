import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/**
 * Prometheus metrics of one process. A registry per instance (not the global
 * one), so tests can build several apps in one process.
 */
export function createMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'oura_ingest_' });
  const ouraRequests = new Counter({
    name: 'oura_ingest_oura_requests_total',
    help: 'Requests sent to the Oura API, by route, HTTP status and rate-limit tier of a 429',
    labelNames: ['route', 'status', 'tier'] as const,
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
    help: 'Time spent waiting for a rate-limit permit, by priority',
    labelNames: ['priority'] as const,
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
    help: 'Webhook deliveries, by outcome (accepted, duplicate, ignored, refused_<reason>)',
    labelNames: ['outcome'] as const,
    registers: [registry],
  });
  const webhookSilence = new Gauge({
    name: 'oura_ingest_seconds_since_last_webhook',
    help: 'Seconds since the newest webhook delivery was recorded (-1: none yet); alert when large while users are active',
    registers: [registry],
  });
  return { registry, webhookSilence, ouraRequests, eventsProcessed, eventRequests, rateLimited, limiterWait, tokenRefreshes, deliveries };
}
export type Metrics = ReturnType<typeof createMetrics>;
