import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { isDeepStrictEqual } from 'node:util';
import { Redis } from 'ioredis';
import type { RequestLogEntry } from '../src/sim/state.js';
import { getServices } from './helpers/env.js';
import { localRedisServers } from './helpers/redis-servers.js';
import { eventually, freePort, freeStablePort, startStack, type Stack } from './helpers/stack.js';

/**
 * Redis behind Sentinel, failing over in the middle of a stream of webhooks
 * (the master is killed):
 * one master, one replica and one sentinel, started here from the machine's
 * redis-server and stopped at the end. The service reaches Redis only
 * through the sentinel (REDIS_SENTINELS).
 */
const LIMIT = { limit: 20, windowS: 2 };
const NAME = 'oura-test';

const redisServers = localRedisServers('failover');

let stack: Stack;
let masterProcess: ChildProcess;
let master: number;
let replica: number;
let sentinel: Redis;
before(async () => {
  master = await freeStablePort(); // killed mid-test: clients retry against it
  replica = await freeStablePort();
  const sentinelPort = await freePort();
  masterProcess = redisServers.server(master);
  redisServers.server(replica, ['--replicaof', '127.0.0.1', String(master)]);
  const dir = redisServers.dir;
  const conf = path.join(dir, 'sentinel.conf');
  writeFileSync(
    conf,
    [
      `port ${sentinelPort}`,
      'bind 127.0.0.1',
      `dir ${dir}`,
      `sentinel monitor ${NAME} 127.0.0.1 ${master} 1`,
      `sentinel down-after-milliseconds ${NAME} 1000`,
      `sentinel failover-timeout ${NAME} 5000`,
      // Told at once, instead of learning it from the master's INFO some seconds later.
      `sentinel known-replica ${NAME} 127.0.0.1 ${replica}`,
      '',
    ].join('\n'),
  );
  redisServers.spawn([conf, '--sentinel']);
  const r = await redisServers.connect(replica);
  await eventually('the replica in sync', async () => /master_link_status:up/.test(await r.info('replication')), { timeoutMs: 10_000 });
  await r.quit();
  sentinel = await redisServers.connect(sentinelPort);
  await eventually('the sentinel sees the replica', async () => ((await sentinel.call('sentinel', 'replicas', NAME)) as unknown[]).length === 1, { timeoutMs: 10_000 });

  const { adminDatabaseUrl } = await getServices();
  stack = await startStack({
    label: 'failover',
    services: { adminDatabaseUrl, redisUrl: `redis://127.0.0.1:${master}` },
    sim: { appLimit: LIMIT },
    env: {
      REDIS_SENTINELS: `127.0.0.1:${sentinelPort}`,
      REDIS_SENTINEL_NAME: NAME,
      OURA_APP_RATE_LIMIT: `${LIMIT.limit}/${LIMIT.windowS}`,
      SWEEP_GRACE_S: '3',
      // A job active when the master died loses its lock with it and runs again once the lock would have expired:
      // at the default 30 s that was most of this test's time, now and then.
      JOB_LOCK_MS: '5000',
    },
  });
});
after(async () => {
  await stack?.close();
  await sentinel?.quit().catch(() => {});
  redisServers.stop();
});

/** The most requests the simulator saw in any rolling window. */
function peak(log: RequestLogEntry[], windowMs: number): number {
  const t = log.map((r) => r.t).sort((a, b) => a - b);
  let best = 0;
  for (let lo = 0, hi = 0; hi < t.length; hi++) {
    while (t[hi]! - t[lo]! >= windowMs) lo++;
    best = Math.max(best, hi - lo + 1);
  }
  return best;
}

test('a Sentinel failover mid-stream: every acknowledged delivery lands, workers resume, the limit holds', async (t) => {
  t.diagnostic(`set up in ${(performance.now() / 1000).toFixed(1)} s (three Redis servers, the stack)`);
  await stack.subscribeAll(['daily_activity', 'workout', 'tag']);
  const users = [await stack.connectUser(), await stack.connectUser()];
  const types = ['daily_activity', 'workout', 'tag'] as const;
  const created: Array<{ userId: string; type: string; id: string; doc: unknown }> = [];
  const create = async (i: number) => {
    const userId = users[i % users.length]!;
    const type = types[i % types.length]!;
    const doc = (await stack.simJson('POST', `/_sim/users/${userId}/documents/${type}`, { notify: true })) as { id: string };
    created.push({ userId, type, id: doc.id, doc });
  };

  const masterBefore = ((await sentinel.call('sentinel', 'get-master-addr-by-name', NAME)) as string[])[1];
  let failedOverAt = 0;
  for (let i = 0; i < 60; i++) {
    if (i === 20) {
      // The master dies: the sentinel notices within a second and promotes the replica.
      masterProcess.kill('SIGKILL');
      failedOverAt = Date.now();
    }
    await create(i);
    await new Promise((r) => setTimeout(r, 100));
  }
  await eventually('the sentinel names the replica master', async () => ((await sentinel.call('sentinel', 'get-master-addr-by-name', NAME)) as string[])[1] !== masterBefore, {
    timeoutMs: 15_000,
  });

  // Every delivery the api acknowledged lands, equal to what Oura holds.
  const deliveries = (await stack.simJson('GET', '/_sim/deliveries')) as Array<{ status: number | null; event: { object_id: string } }>;
  const acknowledged = new Set(deliveries.filter((d) => d.status !== null && d.status < 300).map((d) => d.event.object_id));
  assert.ok(acknowledged.size >= 50, `${acknowledged.size} of ${created.length} deliveries acknowledged`);
  const landed = async () => {
    let n = 0;
    for (const c of created.filter((x) => acknowledged.has(x.id))) {
      const { rows } = await stack.pool.query(`select document from oura.${c.type} where id = $1`, [c.id]);
      if (rows[0] && isDeepStrictEqual(rows[0].document, c.doc)) n++;
    }
    return n;
  };
  const landing = Date.now();
  await eventually('every acknowledged document landed', async () => (await landed()) === acknowledged.size, { timeoutMs: 60_000, intervalMs: 500 });
  t.diagnostic(`failed over ${((landing - failedOverAt) / 1000).toFixed(1)} s after the kill began; every acknowledged document landed ${((Date.now() - landing) / 1000).toFixed(1)} s later`);

  // The workers resumed: new documents land within seconds.
  const resumed = Date.now();
  const fresh = created.length;
  for (let i = 0; i < 5; i++) await create(fresh + i);
  await eventually(
    'new documents land after the failover',
    async () => {
      for (const c of created.slice(fresh)) {
        const { rowCount } = await stack.pool.query(`select 1 from oura.${c.type} where id = $1`, [c.id]);
        if (!rowCount) return false;
      }
      return true;
    },
    { timeoutMs: 15_000, intervalMs: 250 },
  );
  const resumeMs = Date.now() - resumed;

  const log = (await stack.simJson('GET', '/_sim/requests')) as RequestLogEntry[];
  const requests = log.filter((r) => r.path.startsWith('/v2/usercollection/'));
  assert.ok(peak(requests, LIMIT.windowS * 1000) <= LIMIT.limit, `peak ${peak(requests, LIMIT.windowS * 1000)} in a rolling ${LIMIT.windowS} s`);
  t.diagnostic(`${acknowledged.size}/${created.length - 5} acknowledged and landed; resumed in ${resumeMs} ms; peak ${peak(requests, LIMIT.windowS * 1000)} per ${LIMIT.windowS} s; ${requests.length} requests`);
  const port = (r: object) => (r as { stream?: { remotePort?: number } }).stream?.remotePort;
  t.diagnostic(`master ${master} (killed), replica ${replica}; the service's connections: ${port(stack.deps.redis)}, ${port(stack.deps.queueRedis)}`);
  assert.equal(port(stack.deps.redis), replica, 'the service follows the new master');
  assert.equal(port(stack.deps.queueRedis), replica);
  // The service follows the new master: its keys are written there now.
  const promoted = new Redis({ port: replica, host: '127.0.0.1' });
  try {
    assert.match(await promoted.info('replication'), /role:master/);
    assert.ok((await promoted.keys(`${stack.prefix}:*`)).length > 0);
  } finally {
    await promoted.quit();
  }
  assert.ok(resumeMs < 15_000, `resumed in ${resumeMs} ms after a failover begun ${resumed - failedOverAt} ms before`);
});
