import assert from 'node:assert/strict';
import { once } from 'node:events';
import { describe, test } from 'node:test';
import pg from 'pg';
import { Redis } from 'ioredis';
import { DOCUMENT_TYPES } from '../src/oura/registry.js';
import { getServices } from './helpers/env.js';
import { eventually, freePort, startStack, type Stack } from './helpers/stack.js';

const TYPES = DOCUMENT_TYPES.slice(0, 12);

/** One create per type for one user; returns the simulator's documents. */
async function createDocs(stack: Stack, userId: string) {
  const docs: Array<{ type: string; id: string }> = [];
  for (const type of TYPES) {
    const d = await stack.simJson('POST', `/_sim/users/${userId}/documents/${type}`, { notify: true });
    docs.push({ type, id: d.id });
  }
  return docs;
}

async function storedCount(stack: Stack, docs: Array<{ type: string; id: string }>): Promise<number> {
  let n = 0;
  for (const d of docs) {
    const { rowCount } = await stack.deps.pool.query(`select 1 from oura.${d.type} where id = $1`, [d.id]);
    n += rowCount ?? 0;
  }
  return n;
}

type Docs = Awaited<ReturnType<typeof createDocs>>;

/**
 * A stack with no worker running, one connected user, and one acknowledged
 * create per type; `body` does the damage and starts workers; afterwards
 * every document must be stored and every event done.
 */
async function afterDamage(label: string, env: Record<string, string>, body: (stack: Stack, docs: Docs) => Promise<void>) {
  const stack = await startStack({ label, inProcessWorker: false, env });
  try {
    await stack.subscribeAll(TYPES);
    const docs = await createDocs(stack, await stack.connectUser());
    await body(stack, docs);
    await eventually('every document stored', async () => (await storedCount(stack, docs)) === docs.length, { timeoutMs: 40_000 });
    await eventually('every event done', () => allEventsDone(stack));
  } finally {
    await stack.close();
  }
}

/** Every delivery admitted from the inbox, and every event served. */
async function allEventsDone(stack: Stack): Promise<boolean> {
  const { rows } = await stack.deps.pool.query<{ n: number }>(
    `select (select count(*)::int from oura.webhook_events where status <> 'done') + (select count(*)::int from oura.webhook_inbox) as n`,
  );
  return rows[0]!.n === 0;
}

async function stop(child: ReturnType<Stack['spawnProcess']>, signal: NodeJS.Signals): Promise<number | null> {
  if (child.exitCode !== null) return child.exitCode;
  const exited = once(child, 'exit');
  child.kill(signal);
  const [code] = await exited;
  return code as number | null;
}

describe('durability: an acknowledged event is never lost', () => {
  test('a worker killed with kill -9 mid-batch loses nothing', async () => {
    // Slow budget (2 requests/s) so the kill lands while jobs are in flight.
    await afterDamage('kill9', { OURA_APP_RATE_LIMIT: '4/2', JOB_LOCK_MS: '2000' }, async (stack, docs) => {
      const first = stack.spawnProcess('worker');
      await eventually('a few documents stored', async () => (await storedCount(stack, docs)) >= 2, { timeoutMs: 20_000 });
      assert.ok((await storedCount(stack, docs)) < docs.length, 'killed mid-batch');
      await stop(first, 'SIGKILL');
      stack.spawnProcess('worker');
    });
  });

  test('Redis losing its data after acknowledgement (FLUSHDB) loses nothing', async () => {
    const { redisUrl } = await getServices();
    // A Redis database of its own, so the flush touches nothing else.
    const url = new URL(redisUrl);
    url.pathname = '/7';
    await afterDamage('flush', { REDIS_URL: url.toString(), SWEEP_GRACE_S: '2' }, async (stack, docs) => {
      // No worker yet: every acknowledged delivery waits in the inbox, its intake job in Redis.
      const { rows } = await stack.deps.pool.query<{ n: number }>(`select count(*)::int as n from oura.webhook_inbox`);
      assert.equal(rows[0]!.n, docs.length, 'acknowledged and recorded');
      // The api queues intake jobs just after the commit: wait for them, so the flush takes them.
      const queuedIds = async () => (await stack.deps.intakeQueue.getJobs(['waiting'])).flatMap((j) => ('deliveryIds' in j.data ? j.data.deliveryIds : []));
      await eventually('every delivery named by an intake job', async () => (await queuedIds()).length === docs.length);
      const r = new Redis(url.toString());
      try {
        await r.flushdb();
      } finally {
        r.disconnect();
      }
      assert.deepEqual(await queuedIds(), [], 'the intake jobs are gone');
      stack.spawnProcess('worker');
    });
  });

  test('a Postgres outage makes jobs retry, and they land once it is back', async () => {
    const { adminDatabaseUrl } = await getServices();
    const admin = new pg.Client({ connectionString: adminDatabaseUrl });
    await admin.connect();
    try {
      await afterDamage('pgdown', { JOB_BACKOFF_MS: '300', JOB_ATTEMPTS: '10' }, async (stack) => {
        try {
          // Outage of this test's database only: no new connections, existing ones cut.
          await admin.query(`alter database ${stack.db.name} allow_connections false`);
          await admin.query(`select pg_terminate_backend(pid) from pg_stat_activity where datname = $1 and pid <> pg_backend_pid()`, [stack.db.name]);
          const worker = stack.spawnProcess('worker');
          await new Promise((r) => setTimeout(r, 3000));
          assert.equal(worker.exitCode, null, 'the worker survives the outage');
        } finally {
          await admin.query(`alter database ${stack.db.name} allow_connections true`);
        }
      });
    } finally {
      await admin.end();
    }
  });

  test('SIGTERM: worker and api stop taking work, finish in flight and exit 0; nothing is lost', async () => {
    await afterDamage('sigterm', { OURA_APP_RATE_LIMIT: '4/2', JOB_LOCK_MS: '2000' }, async (stack, docs) => {
      const worker = stack.spawnProcess('worker');
      await eventually('work in flight', async () => (await storedCount(stack, docs)) >= 1, { timeoutMs: 20_000 });
      const t0 = Date.now();
      assert.equal(await stop(worker, 'SIGTERM'), 0);
      assert.ok(Date.now() - t0 < 26_000, 'within the shutdown bound');
      const port = await freePort();
      const api = stack.spawnProcess('api', { PORT: String(port), HOST: '127.0.0.1' });
      await eventually('api up', async () => (await fetch(`http://127.0.0.1:${port}/healthz`)).ok, { timeoutMs: 20_000 });
      assert.equal(await stop(api, 'SIGTERM'), 0);
      await assert.rejects(fetch(`http://127.0.0.1:${port}/healthz`), 'the api no longer listens');
      stack.spawnProcess('worker');
    });
  });
});
