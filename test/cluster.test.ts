import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { isDeepStrictEqual } from 'node:util';
import type { Redis } from 'ioredis';
import { TEST_LOG_DIR } from './check-logs.js';
import { getServices } from './helpers/env.js';
import { localRedisServers } from './helpers/redis-servers.js';
import { eventually, freePort, startStack, type Stack } from './helpers/stack.js';

/**
 * Redis Cluster: three masters, started here from the machine's
 * redis-server and joined by `redis-cli --cluster create` (then a replica,
 * to fail over to), stopped at the end. The service reaches them through a
 * `redis+cluster://` REDIS_URL, with its key prefix a hash tag; its api and
 * worker run in this process.
 */
const TYPES = ['daily_activity', 'daily_sleep', 'workout', 'tag'] as const;
// A small window, so that the pause after a failover (one window) is short.
const LIMIT = { limit: 40, windowS: 1 };

const redisServers = localRedisServers('cluster');
const nodes: Redis[] = [];
let stack: Stack;
let userId: string;
/** Each node's cluster bus port, by its port. */
const busPorts = new Map<number, number>();

/** A cluster node on free ports: the bus gets one of its own (by default it is the port + 10 000, which may be taken or out of range). */
async function clusterNode(): Promise<Redis> {
  const [port, bus] = [await freePort(), await freePort()];
  redisServers.server(port, ['--cluster-enabled', 'yes', '--cluster-config-file', `nodes-${port}.conf`, '--cluster-port', String(bus)]);
  busPorts.set(port, bus);
  const node = await redisServers.connect(port);
  nodes.push(node);
  return node;
}

before(async () => {
  for (let i = 0; i < 3; i++) await clusterNode();
  const ports = nodes.map((n) => n.options.port!);
  const addresses = ports.map((p) => `127.0.0.1:${p}`);
  execFileSync('redis-cli', ['--cluster', 'create', ...addresses, '--cluster-replicas', '0', '--cluster-yes'], { stdio: 'pipe', timeout: 30_000 });
  await eventually('cluster_state:ok on every node', async () => (await Promise.all(nodes.map((n) => n.cluster('INFO')))).every((i) => /cluster_state:ok/.test(i)), {
    timeoutMs: 15_000,
    intervalMs: 100,
  });

  const { adminDatabaseUrl } = await getServices();
  stack = await startStack({
    label: 'cluster',
    hashTag: true,
    // Two of the three nodes: the client learns the third from them.
    services: { adminDatabaseUrl, redisUrl: `redis+cluster://${addresses.slice(0, 2).join(',')}` },
    env: { RECHECK_DELAY_S: '0', OURA_APP_RATE_LIMIT: `${LIMIT.limit}/${LIMIT.windowS}` },
  });
  await stack.subscribeAll(TYPES);
  userId = await stack.connectUser();
});
after(async () => {
  await stack?.close();
  for (const n of nodes) await n.quit().catch(() => {});
  redisServers.stop();
});

const row = async (type: string, id: string) => (await stack.pool.query(`select document from oura.${type} where id = $1`, [id])).rows[0] ?? null;

/** The master of the prefix's slot: its port, and its node id. */
async function tagMaster(): Promise<{ port: number; id: string; slot: number }> {
  const slot = (await nodes[0]!.cluster('KEYSLOT', stack.prefix)) as number;
  const [, port, id] = (await nodes[0]!.cluster('SLOTS')).find(([from, to]) => from <= slot && slot <= to)![2]!;
  return { port, id, slot };
}

test('on Redis Cluster, documents land through the webhook path, every key sits in the tag’s slot, and nothing crosses slots', async (t) => {
  assert.match(stack.prefix, /^\{.+\}$/);

  // Create, update and delete a document of each type, types side by side.
  await Promise.all(
    TYPES.map(async (type) => {
      const created = await stack.simJson('POST', `/_sim/users/${userId}/documents/${type}`, { notify: true });
      await eventually(`${type} created`, async () => isDeepStrictEqual((await row(type, created.id))?.document, created));
      const updated = await stack.simJson('PATCH', `/_sim/users/${userId}/documents/${type}/${created.id}`, { notify: true });
      await eventually(`${type} updated`, async () => isDeepStrictEqual((await row(type, created.id))?.document, updated));
      await stack.simJson('DELETE', `/_sim/users/${userId}/documents/${type}/${created.id}?notify=true`);
      await eventually(`${type} deleted`, async () => (await row(type, created.id)) === null);
    }),
  );
  const { rows } = await stack.pool.query<{ status: string; n: number }>('select status, count(*)::int as n from oura.webhook_events group by status');
  assert.deepEqual(rows, [{ status: 'done', n: TYPES.length * 3 }]);

  // The budget's counters (a MULTI and a pipeline of several keys) were written and read back.
  const usage = await stack.deps.usage.lastHour();
  assert.ok((usage['requests:live'] ?? 0) >= TYPES.length * 2, JSON.stringify(usage));
  // The queues' counts are read (a scrape leaves out a queue it could not read).
  const metrics = await (await fetch(`${stack.apiUrl}/metrics`)).text();
  for (const queue of ['intake', 'events', 'backfill', 'maintenance']) assert.match(metrics, new RegExp(`oura_ingest_queue_jobs\\{queue="${queue}",state="waiting"\\} 0`));
  // Every lock taken was released (a script on its key).
  await eventually('no lock left held', async () => (await keysOn(nodes, `${stack.prefix}:lock:*`)).length === 0);

  // Every key of the deployment sits on the master of the tag's slot.
  const { port: owner, slot } = await tagMaster();
  const perNode = await Promise.all(nodes.map(async (n) => ({ port: n.options.port, keys: await keysOn([n], `${stack.prefix}*`) })));
  const holders = perNode.filter((n) => n.keys.length > 0);
  assert.equal(holders.length, 1, `keys on ${holders.map((h) => h.port).join(', ')}`);
  assert.equal(holders[0]!.port, owner);
  assert.ok(holders[0]!.keys.some((k) => k.includes(':oura-events:')) && holders[0]!.keys.some((k) => k.includes(':{limiter}:')), 'queues and limiter');

  // The service's log (this process's api and worker) holds no error at all, so no CROSSSLOT either.
  const log = serviceLog();
  assert.equal(log.filter((l) => /CROSSSLOT|same slot/i.test(JSON.stringify(l))).length, 0);
  assert.deepEqual(log.filter((l) => Number(l.level) >= 50), []);
  assert.ok(!log.some((l) => l.msg === 'redis is another server now: the limiter waits one window before sending'), 'no failover seen where there was none');
  t.diagnostic(`${holders[0]!.keys.length} keys in slot ${slot} on 127.0.0.1:${owner}; ${usage['requests:live']} live requests`);
});

test('a failover inside the cluster: the service follows the new master of its slot, and the limiter waits one window', async (t) => {
  // A replica of the tag's master joins, catches up, and takes over (CLUSTER FAILOVER, as an operator would).
  const master = await tagMaster();
  const replica = await clusterNode();
  await replica.call('CLUSTER', 'MEET', '127.0.0.1', master.port, busPorts.get(master.port)!);
  await eventually('the replica knows the master', async () => String(await replica.cluster('NODES')).includes(master.id), { timeoutMs: 10_000, intervalMs: 100 });
  await replica.cluster('REPLICATE', master.id);
  await eventually('the replica in sync', async () => /master_link_status:up/.test(await replica.info('replication')), { timeoutMs: 10_000, intervalMs: 100 });
  await replica.cluster('FAILOVER');
  await eventually('the replica is the master of the slot', async () => (await tagMaster()).port === replica.options.port, { timeoutMs: 10_000, intervalMs: 100 });
  const failedOverAt = Date.now();

  // Documents keep landing.
  const created = await Promise.all(TYPES.map((type) => stack.simJson('POST', `/_sim/users/${userId}/documents/${type}`, { notify: true })));
  await Promise.all(TYPES.map((type, i) => eventually(`${type} created after the failover`, async () => isDeepStrictEqual((await row(type, created[i].id))?.document, created[i]), { timeoutMs: 15_000 })));
  const landedMs = Date.now() - failedOverAt;

  const log = serviceLog();
  assert.ok(log.some((l) => l.msg === 'redis is another server now: the limiter waits one window before sending'));
  assert.equal(log.filter((l) => /CROSSSLOT|same slot/i.test(JSON.stringify(l))).length, 0);
  // A connection whose command the failover broke (a worker's blocking read) is logged as failed, then restored.
  const outages = () => {
    const lines = serviceLog();
    const failed = new Set(lines.filter((l) => /: connection failed$/.test(String(l.msg))).map((l) => l.connection));
    const restored = new Set(lines.filter((l) => /: connection restored$/.test(String(l.msg))).map((l) => l.connection));
    return { failed: [...failed], restored: [...restored] };
  };
  await eventually('every outage logged ended', async () => outages().failed.every((c) => outages().restored.includes(c)), { timeoutMs: 10_000, intervalMs: 200 });
  t.diagnostic(`documents landed ${landedMs} ms after the failover; outages logged: ${JSON.stringify(outages())}`);
});

/** The service's log lines (this process's api and worker). */
function serviceLog(): Array<Record<string, unknown>> {
  const text = readFileSync(path.join(TEST_LOG_DIR, `${stack.prefix}.log`), 'utf8');
  return text
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

/** The keys matching `pattern` on these nodes (each scanned: a cluster's keys are spread over its masters). */
async function keysOn(servers: Redis[], pattern: string): Promise<string[]> {
  const out: string[] = [];
  for (const s of servers) {
    let cursor = '0';
    do {
      const [next, keys] = await s.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
      cursor = next;
      out.push(...keys);
    } while (cursor !== '0');
  }
  return out;
}
