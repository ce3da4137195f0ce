import pg from 'pg';
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import { createDocumentsRepo } from '../db/documents.js';
import { createDb, createPool } from '../db/index.js';
import { createPartnerWebhooksRepo, webhookIdOf, type PartnerMessage } from '../db/partner-webhooks.js';
import type { Metrics } from '../metrics.js';
import { isDocumentType } from '../oura/registry.js';
import { createOutageLog, watchOutages } from '../outages.js';
import { messageBody, retryAfterMs, retryDelay, signedHeaders, signingKey } from './message.js';

/** Changes turned into messages per transaction. */
const FAN_OUT_BATCH = 500;
/** Without a notification, the feed and the due retries are looked at this often. */
const POLL_MS = 1000;
/** How soon the LISTEN connection is opened again after it failed. */
const RELISTEN_MS = 1000;
/** On close, attempts in flight get this long to finish before they are abandoned (to be sent again later). */
const CLOSE_GRACE_MS = 10_000;

export interface PartnerWebhooksOptions {
  config: Config;
  log: Logger;
  metrics: Metrics;
}

/**
 * The outbound webhooks (README, "Outbound webhooks"), run in every worker
 * process when PARTNER_WEBHOOK_URL and PARTNER_WEBHOOK_SECRET are set; null
 * when they are not. A loop, woken by `LISTEN oura_changes` (and a poll, in
 * case a notification was missed), turns new changes into messages and sends
 * the messages that are due, at most PARTNER_WEBHOOK_CONCURRENCY at once and
 * one per user at a time (src/db/partner-webhooks.ts).
 *
 * It has a pool of its own (three connections and the LISTEN one), so a
 * partner that is slow or down costs ingestion no connection, and no Oura
 * request is ever made here.
 */
export function startPartnerWebhooks(opts: PartnerWebhooksOptions) {
  const { config, metrics } = opts;
  const url = config.PARTNER_WEBHOOK_URL;
  const secret = config.PARTNER_WEBHOOK_SECRET;
  if (!url || !secret) return null;
  const log = opts.log.child({ module: 'partner-webhooks' });
  const key = signingKey(secret);
  const timeoutMs = config.PARTNER_WEBHOOK_TIMEOUT_MS;
  // A claimed message stays ours this long: the attempt ends (timeout) well before.
  const holdMs = 2 * timeoutMs + 2000;

  const pool = createPool({ url: config.DATABASE_URL, max: 3, applicationName: 'oura-ingest partner-webhooks' });
  const outages = createOutageLog(log, 'postgres (partner webhooks)');
  watchOutages(pool, outages, 'connect');
  const db = createDb(pool);
  const repo = createPartnerWebhooksRepo(db);
  const documents = createDocumentsRepo(db);
  // The partner failing is logged as an outage (once, then a reminder a minute, then its recovery); each attempt at debug.
  const endpoint = createOutageLog(log, 'partner webhook endpoint');

  let closing = false;
  const inFlight = new Map<number, { done: Promise<void>; abort: AbortController }>();

  // Wake-ups: a notification, an attempt finished, a retry falling due, the poll.
  // A notification only asks for a fan-out; a claim (the costlier query when a
  // partner is down and messages pile up) runs when the fan-out made messages,
  // an attempt ended, a retry fell due, or at the poll.
  let wakeUp: (() => void) | null = null;
  let woken = false;
  let claimWanted = true;
  const wake = () => {
    woken = true;
    wakeUp?.();
  };
  const wakeToClaim = () => {
    claimWanted = true;
    wake();
  };
  const retryTimers = new Set<NodeJS.Timeout>();
  const wakeIn = (ms: number) => {
    const t = setTimeout(() => {
      retryTimers.delete(t);
      wakeToClaim();
    }, ms);
    t.unref();
    retryTimers.add(t);
  };

  // LISTEN on a connection of its own, opened again whenever it fails.
  let listener: pg.Client | null = null;
  let relisten: NodeJS.Timeout | null = null;
  const listenOutages = createOutageLog(log, 'postgres (partner webhooks listen)');
  function listen(): void {
    if (closing) return;
    const client = new pg.Client({ connectionString: config.DATABASE_URL, application_name: 'oura-ingest partner-webhooks listen' });
    listener = client;
    const retry = (err: unknown) => {
      if (listener !== client) return;
      listener = null;
      if (closing) return;
      listenOutages.error(err);
      void client.end().catch(() => undefined);
      relisten = setTimeout(listen, RELISTEN_MS);
      relisten.unref();
    };
    client.on('error', retry);
    client.on('end', () => retry(new Error('LISTEN connection ended')));
    client.on('notification', wake);
    client
      .connect()
      .then(() => client.query('LISTEN oura_changes'))
      .then(() => {
        listenOutages.recovered();
        // Anything written while we were not listening.
        wakeToClaim();
      })
      .catch(retry);
  }

  async function send(m: PartnerMessage): Promise<void> {
    const abort = new AbortController();
    const done = attempt(m, abort.signal).catch((err: Error) => log.error({ err, seq: m.seq, userId: m.user_id }, 'partner webhook attempt broke off: sent again once its hold expires'));
    inFlight.set(m.seq, { done, abort });
    await done;
    inFlight.delete(m.seq);
    wakeToClaim();
  }

  /** One attempt: the message signed now, its outcome recorded. */
  async function attempt(m: PartnerMessage, closed: AbortSignal): Promise<void> {
    const data = { ...m.data };
    const dataType = String(data.data_type ?? '');
    if (config.PARTNER_WEBHOOK_INCLUDE_DOCUMENT && (m.event_type === 'document.created' || m.event_type === 'document.updated') && isDocumentType(dataType)) {
      const document = await documents.get(dataType, m.user_id, String(data.object_id));
      if (document) data.document = document;
    }
    const body = messageBody(m.event_type, m.occurred_at, data);
    let status: number | null = null;
    let error: string;
    let retryAfter: number | null = null;
    try {
      const res = await fetch(url!, {
        method: 'POST',
        headers: { ...signedHeaders(key, webhookIdOf(m.seq), body), 'user-agent': 'oura-ingest' },
        body,
        // A redirect is a failure (Standard Webhooks): the URL should be updated instead.
        redirect: 'manual',
        signal: AbortSignal.any([AbortSignal.timeout(timeoutMs), closed]),
      });
      status = res.status;
      await res.body?.cancel().catch(() => undefined);
      if (status >= 200 && status < 300) {
        await repo.delivered(m.seq, status);
        metrics.partnerWebhookAttempts.inc({ outcome: 'delivered' });
        log.debug({ seq: m.seq, userId: m.user_id, status, attempts: m.attempts }, 'partner webhook delivered');
        endpoint.recovered();
        return;
      }
      error = `HTTP ${status}`;
      retryAfter = retryAfterMs(res.headers.get('retry-after'));
    } catch (err) {
      // Closing: left held, to be sent again once the hold expires.
      if (closed.aborted) return;
      const e = err as Error & { cause?: { code?: string } };
      error = e.name === 'TimeoutError' ? `timeout after ${timeoutMs} ms` : `network: ${e.cause?.code ?? e.message}`;
    }
    const retryInMs = retryDelay(config.PARTNER_WEBHOOK_RETRY_SCHEDULE, m.attempts, retryAfter);
    await repo.failed(m.seq, m.attempts, { status, error, retryInMs });
    metrics.partnerWebhookAttempts.inc({ outcome: retryInMs === null ? 'dead' : 'failed' });
    if (retryInMs === null) log.warn({ seq: m.seq, userId: m.user_id, status, error, attempts: m.attempts }, 'partner webhook dead: no attempt left (replay with: webhooks replay)');
    else {
      log.debug({ seq: m.seq, userId: m.user_id, status, error, attempts: m.attempts, retryInMs }, 'partner webhook attempt failed');
      endpoint.error(new Error(error));
      wakeIn(retryInMs);
    }
  }

  /** One round: new changes into messages, then as many due messages as there is room for. */
  async function round(): Promise<void> {
    let made = 0;
    for (let n = FAN_OUT_BATCH; n === FAN_OUT_BATCH && !closing; made += n) n = await repo.fanOut(FAN_OUT_BATCH);
    if (made > 0) claimWanted = true;
    const room = config.PARTNER_WEBHOOK_CONCURRENCY - inFlight.size;
    if (room <= 0 || closing || !claimWanted) return;
    claimWanted = false;
    for (const m of await repo.claim(room, holdMs)) void send(m);
  }

  const loop = (async () => {
    while (!closing) {
      try {
        const cursor = await repo.ensureCursor();
        log.info({ cursor: `${cursor.txid}-${cursor.seq}`, concurrency: config.PARTNER_WEBHOOK_CONCURRENCY }, 'partner webhooks on');
        break;
      } catch (err) {
        outages.error(err);
        await new Promise((r) => setTimeout(r, POLL_MS));
      }
    }
    let lastRoundMs = 0;
    while (!closing) {
      const started = Date.now();
      woken = false;
      try {
        await round();
        outages.recovered();
      } catch (err) {
        outages.error(err);
      }
      lastRoundMs = Date.now() - started;
      if (closing) break;
      // Rounds at least twice their own length apart: a claim over a long backlog costs Postgres at most half its time.
      await new Promise((r) => setTimeout(r, Math.max(20, lastRoundMs)));
      if (!woken && !closing) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(() => {
            claimWanted = true;
            resolve();
          }, POLL_MS);
          wakeUp = () => {
            clearTimeout(timer);
            resolve();
          };
        });
        wakeUp = null;
      }
    }
  })();

  listen();

  return {
    /** Sends nothing more; attempts in flight get a few seconds, then the rest are left to be sent again. */
    async close(): Promise<void> {
      closing = true;
      wake();
      if (relisten) clearTimeout(relisten);
      for (const t of retryTimers) clearTimeout(t);
      await loop;
      const pending = [...inFlight.values()];
      const grace = setTimeout(() => pending.forEach((f) => f.abort.abort()), CLOSE_GRACE_MS);
      await Promise.all(pending.map((f) => f.done));
      clearTimeout(grace);
      const l = listener;
      listener = null;
      await l?.end().catch(() => undefined);
      outages.close();
      listenOutages.close();
      endpoint.close();
      await pool.end();
    },
  };
}
