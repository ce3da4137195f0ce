import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { repoRoot } from '../dev/service.js';
import { Cluster, type ClusterOptions } from 'ioredis';
import { ConfigError, loadConfig } from '../src/config.js';
import { redisConnector } from '../src/redis-connect.js';
import { serviceArgs, TEST_SECRETS } from './helpers/env.js';

const root = repoRoot;
const valid = {
  ...TEST_SECRETS,
  DATABASE_URL: 'postgres://localhost/x',
  REDIS_URL: 'redis://localhost:6379',
  PUBLIC_BASE_URL: 'https://ingest.example.com/',
};

function errorFor(env: Record<string, string | undefined>): string {
  try {
    loadConfig(env);
  } catch (err) {
    assert.ok(err instanceof ConfigError);
    return err.message;
  }
  assert.fail('expected a ConfigError');
}

test('defaults follow the documented values, token URL derives from the API base', () => {
  const c = loadConfig({ ...valid, OURA_API_BASE_URL: 'http://sim:8090/' });
  assert.deepEqual(c.OURA_APP_RATE_LIMIT, { limit: 5000, windowS: 300 });
  assert.equal(c.WEBHOOK_MAX_AGE_S, 7200);
  assert.equal(c.PORT, 8080);
  assert.equal(c.HOST, '0.0.0.0');
  assert.equal(c.OURA_TOKEN_URL, 'http://sim:8090/oauth/token');
  assert.equal(c.OURA_AUTHORIZE_URL, 'https://cloud.ouraring.com/oauth/authorize');
  assert.equal(c.PUBLIC_BASE_URL, 'https://ingest.example.com');
  const d = loadConfig(valid);
  assert.equal(d.OURA_API_BASE_URL, 'https://api.ouraring.com');
  assert.equal(d.OURA_TOKEN_URL, 'https://api.ouraring.com/oauth/token');
  assert.equal(loadConfig({ ...valid, OURA_TOKEN_URL: 'https://x.example/token' }).OURA_TOKEN_URL, 'https://x.example/token');
  assert.deepEqual(loadConfig({ ...valid, OURA_APP_RATE_LIMIT: '20/5' }).OURA_APP_RATE_LIMIT, { limit: 20, windowS: 5 });
  // Sentinel instead of one server: REDIS_URL is then optional.
  const s = loadConfig({ ...valid, REDIS_URL: undefined, REDIS_SENTINELS: '10.0.0.1:26379, sentinel-b:26380' });
  assert.deepEqual(s.REDIS_SENTINELS, [
    { host: '10.0.0.1', port: 26379 },
    { host: 'sentinel-b', port: 26380 },
  ]);
  assert.equal(s.REDIS_SENTINEL_NAME, 'mymaster');
  assert.deepEqual(loadConfig({ ...valid, BUDGET_FLOORS: 'reconcile=0.2' }).BUDGET_FLOORS, { backfill: 0.05, timeseries: 0.1, reconcile: 0.2 });
});

test('a missing or malformed value names the variable in one line', () => {
  const cases: Array<[Record<string, string | undefined>, RegExp]> = [
    [{ ...valid, DATABASE_URL: undefined }, /^config: DATABASE_URL is required but not set$/],
    [{ ...valid, OURA_CLIENT_SECRET: '' }, /^config: OURA_CLIENT_SECRET is required/],
    [{ ...valid, OURA_APP_RATE_LIMIT: 'lots' }, /^config: OURA_APP_RATE_LIMIT expected N\/W/],
    [{ ...valid, OURA_APP_RATE_LIMIT: '0/5' }, /^config: OURA_APP_RATE_LIMIT N and W must both be at least 1/],
    [{ ...valid, TOKEN_ENCRYPTION_KEY: Buffer.alloc(16).toString('base64') }, /^config: TOKEN_ENCRYPTION_KEY expected 32 bytes/],
    [{ ...valid, PORT: 'eighty' }, /^config: PORT /],
    [{ ...valid, PUBLIC_BASE_URL: 'not a url' }, /^config: PUBLIC_BASE_URL expected an absolute URL/],
    [{ ...valid, LOG_LEVEL: 'loud' }, /^config: LOG_LEVEL /],
    [{ ...valid, WEBHOOK_MAX_AGE_S: '-1' }, /^config: WEBHOOK_MAX_AGE_S /],
    [{ ...valid, REDIS_URL: undefined }, /^config: REDIS_URL is required but not set \(or set REDIS_SENTINELS or REDIS_CLUSTER_NODES\)$/],
    [{ ...valid, REDIS_SENTINELS: '10.0.0.1:26379,sentinel-b' }, /^config: REDIS_SENTINELS expected host:port\[,host:port…\] \(got "sentinel-b"\)$/],
    [{ ...valid, BUDGET_FLOORS: 'live=0.5' }, /^config: BUDGET_FLOORS expected lane=share with lane one of backfill, timeseries, reconcile/],
    [{ ...valid, BUDGET_FLOORS: 'backfill=0.5,timeseries=0.5' }, /^config: BUDGET_FLOORS the floors add up to more than 0.9/],
  ];
  for (const [env, re] of cases) {
    const msg = errorFor(env);
    assert.match(msg, re);
    assert.equal(msg.includes('\n'), false);
  }
});

test('start-up with a bad value exits non-zero with one line naming the variable', () => {
  const r = spawnSync(process.execPath, serviceArgs('main', ['api']), {
    cwd: root,
    env: { PATH: process.env.PATH, ...valid, TOKEN_ENCRYPTION_KEY: 'short' },
    encoding: 'utf8',
    timeout: 30_000,
  });
  assert.equal(r.status, 2);
  assert.equal(r.stderr.trim().split('\n').length, 1);
  assert.match(r.stderr, /TOKEN_ENCRYPTION_KEY/);
  assert.equal(r.stderr.includes(TEST_SECRETS.OURA_CLIENT_SECRET), false);
});

test('REDIS_KEY_PREFIX takes one Redis Cluster hash tag, and refuses what would break key composition', () => {
  assert.equal(loadConfig(valid).REDIS_KEY_PREFIX, 'oura-ingest');
  for (const prefix of ['{oura-ingest}', '{oura-ingest}-eu', 'eu.{oura_ingest}', 'oura-ingest']) {
    assert.equal(loadConfig({ ...valid, REDIS_KEY_PREFIX: prefix }).REDIS_KEY_PREFIX, prefix);
  }
  for (const prefix of ['oura ingest', 'oura:ingest', '{}', '{oura}{eu}', '{oura', 'oura}', '{oura{eu}}', 'x'.repeat(65)]) {
    const msg = errorFor({ ...valid, REDIS_KEY_PREFIX: prefix });
    assert.match(msg, /^config: REDIS_KEY_PREFIX expected 1-64 letters, .* \{hash tag\}/, prefix);
    assert.equal(msg.includes('\n'), false);
  }
});

test('Redis Cluster: a redis+cluster:// URL or REDIS_CLUSTER_NODES, a hash-tagged prefix, the URL\'s credentials on every node', () => {
  const byUrl = loadConfig({ ...valid, REDIS_URL: 'redis+cluster://ingest:p%40ss@10.0.0.1:7000,[::1]:7001' });
  assert.deepEqual(byUrl.REDIS_CLUSTER_NODES, [
    { host: '10.0.0.1', port: 7000 },
    { host: '::1', port: 7001 },
  ]);
  assert.equal(byUrl.REDIS_KEY_PREFIX, '{oura-ingest}', 'the default prefix is a hash tag on Redis Cluster');
  assert.equal(loadConfig({ ...valid, REDIS_URL: 'redis+cluster://10.0.0.1:7000', REDIS_KEY_PREFIX: 'eu.{oura}' }).REDIS_KEY_PREFIX, 'eu.{oura}');
  const byNodes = loadConfig({ ...valid, REDIS_URL: undefined, REDIS_CLUSTER_NODES: 'redis-a:6379, redis-b:6379' });
  assert.deepEqual(byNodes.REDIS_CLUSTER_NODES, [
    { host: 'redis-a', port: 6379 },
    { host: 'redis-b', port: 6379 },
  ]);
  assert.deepEqual(loadConfig(valid).REDIS_CLUSTER_NODES, []);

  // Every connection is a cluster client; the node connections get the URL's credentials (TLS with rediss),
  // and the cluster the options that are its own.
  const options = (url: string) => {
    const c = redisConnector(loadConfig({ ...valid, REDIS_URL: url }))({ lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: null });
    assert.ok(c instanceof Cluster);
    return c.options as ClusterOptions;
  };
  const o = options('redis+cluster://ingest:p%40ss@10.0.0.1:7000');
  assert.equal(o.enableOfflineQueue, false);
  assert.deepEqual(o.redisOptions, { maxRetriesPerRequest: null, username: 'ingest', password: 'p@ss' });
  assert.deepEqual(options('rediss+cluster://:secret@10.0.0.1:7000').redisOptions, { maxRetriesPerRequest: null, password: 'secret', tls: {} });
  const viaNodes = redisConnector(loadConfig({ ...valid, REDIS_URL: 'rediss://:secret@ignored:1', REDIS_CLUSTER_NODES: '10.0.0.1:7000' }))({ lazyConnect: true });
  assert.deepEqual((viaNodes.options as ClusterOptions).redisOptions, { password: 'secret', tls: {} });

  const cases: Array<[Record<string, string | undefined>, RegExp]> = [
    [{ ...valid, REDIS_URL: 'redis+cluster://:hunter2@10.0.0.1' }, /^config: REDIS_URL expected redis\+cluster:\/\/\[user:password@\]host:port\[,host:port…\]/],
    [{ ...valid, REDIS_URL: 'redis+cluster://:hunter2@10.0.0.1:7000/3' }, /^config: REDIS_URL expected redis\+cluster:/],
    [{ ...valid, REDIS_CLUSTER_NODES: '10.0.0.1:7000,redis-b' }, /^config: REDIS_CLUSTER_NODES expected host:port\[,host:port…\] \(got "redis-b"\)$/],
    [{ ...valid, REDIS_URL: 'redis://:hunter2@x/2', REDIS_CLUSTER_NODES: '10.0.0.1:7000' }, /^config: REDIS_URL names a database other than 0/],
    [{ ...valid, REDIS_URL: ':hunter2@x', REDIS_CLUSTER_NODES: '10.0.0.1:7000' }, /^config: REDIS_URL expected redis\[s\]:\/\/\[user:password@\]host/],
    [{ ...valid, REDIS_CLUSTER_NODES: '10.0.0.1:7000', REDIS_SENTINELS: '10.0.0.1:26379' }, /^config: REDIS_CLUSTER_NODES names a Redis Cluster, and REDIS_SENTINELS is set too/],
    [{ ...valid, REDIS_URL: 'redis+cluster://10.0.0.1:7000', REDIS_SENTINELS: '10.0.0.1:26379' }, /^config: REDIS_URL names a Redis Cluster, and REDIS_SENTINELS is set too/],
    [{ ...valid, REDIS_CLUSTER_NODES: '10.0.0.1:7000', REDIS_KEY_PREFIX: 'oura-ingest' }, /^config: REDIS_KEY_PREFIX needs a \{hash tag\} on Redis Cluster, e.g. \{oura-ingest\}/],
  ];
  for (const [env, re] of cases) {
    const msg = errorFor(env);
    assert.match(msg, re);
    assert.equal(msg.includes('\n'), false);
    assert.equal(msg.includes('hunter2'), false, 'no password in the message');
  }
});

test('METRICS_PORT: a port, a range whose first free port each worker takes, or 0 for none', () => {
  assert.deepEqual(loadConfig(valid).METRICS_PORT, { first: 9464, last: 9464 });
  assert.deepEqual(loadConfig({ ...valid, METRICS_PORT: '9500' }).METRICS_PORT, { first: 9500, last: 9500 });
  assert.deepEqual(loadConfig({ ...valid, METRICS_PORT: '9464-9471' }).METRICS_PORT, { first: 9464, last: 9471 });
  assert.equal(loadConfig({ ...valid, METRICS_PORT: '0' }).METRICS_PORT, null);
  for (const bad of ['9471-9464', '0-10', '9464-70000', 'any', '9464,9465']) {
    assert.match(errorFor({ ...valid, METRICS_PORT: bad }), /^config: METRICS_PORT expected a port \(1-65535\), a range first-last/, bad);
  }
});

test('outbound webhooks: off by default, URL and secret both or neither, a whsec_ secret of 24-64 bytes, a schedule of delays', () => {
  const off = loadConfig(valid);
  assert.equal(off.PARTNER_WEBHOOK_URL, undefined);
  assert.equal(off.PARTNER_WEBHOOK_INCLUDE_DOCUMENT, false);
  assert.deepEqual(off.PARTNER_WEBHOOK_RETRY_SCHEDULE, [5_000, 300_000, 1_800_000, 7_200_000, 18_000_000, 36_000_000, 36_000_000]);
  assert.ok(off.PARTNER_WEBHOOK_RETRY_SCHEDULE.reduce((a, b) => a + b) >= 24 * 3_600_000, 'the default schedule spans at least 24 h');
  assert.equal(off.PARTNER_WEBHOOK_TIMEOUT_MS, 15_000);
  assert.equal(off.PARTNER_WEBHOOK_CONCURRENCY, 8);
  assert.equal(off.CHANGES_RETENTION_DAYS, 30);
  const secret = `whsec_${Buffer.alloc(32, 9).toString('base64')}`;
  const on = loadConfig({ ...valid, PARTNER_WEBHOOK_URL: 'https://partner.example/hooks', PARTNER_WEBHOOK_SECRET: secret, PARTNER_WEBHOOK_RETRY_SCHEDULE: '50ms, 1.5s,2m,1h,1d' });
  assert.equal(on.PARTNER_WEBHOOK_SECRET, secret);
  assert.deepEqual(on.PARTNER_WEBHOOK_RETRY_SCHEDULE, [50, 1500, 120_000, 3_600_000, 86_400_000]);

  const cases: Array<[Record<string, string | undefined>, RegExp]> = [
    [{ ...valid, PARTNER_WEBHOOK_URL: 'https://partner.example/hooks' }, /^config: PARTNER_WEBHOOK_SECRET is required when PARTNER_WEBHOOK_URL or PARTNER_WEBHOOK_SECRET is set/],
    [{ ...valid, PARTNER_WEBHOOK_SECRET: secret }, /^config: PARTNER_WEBHOOK_URL is required when/],
    [{ ...valid, PARTNER_WEBHOOK_URL: 'ftp://partner.example/', PARTNER_WEBHOOK_SECRET: secret }, /^config: PARTNER_WEBHOOK_URL expected an http or https URL$/],
    [{ ...valid, PARTNER_WEBHOOK_URL: 'https://p.example/', PARTNER_WEBHOOK_SECRET: Buffer.alloc(32, 9).toString('base64') }, /^config: PARTNER_WEBHOOK_SECRET expected whsec_ followed by 24 to 64 random bytes in base64/],
    [{ ...valid, PARTNER_WEBHOOK_URL: 'https://p.example/', PARTNER_WEBHOOK_SECRET: `whsec_${Buffer.alloc(16).toString('base64')}` }, /^config: PARTNER_WEBHOOK_SECRET expected whsec_/],
    [{ ...valid, PARTNER_WEBHOOK_RETRY_SCHEDULE: '5s,soon' }, /^config: PARTNER_WEBHOOK_RETRY_SCHEDULE expected delays such as 5s,5m,30m,2h .*got "soon"/],
    [{ ...valid, PARTNER_WEBHOOK_INCLUDE_DOCUMENT: 'yes' }, /^config: PARTNER_WEBHOOK_INCLUDE_DOCUMENT expected true or false$/],
    [{ ...valid, CHANGES_RETENTION_DAYS: '0' }, /^config: CHANGES_RETENTION_DAYS /],
  ];
  for (const [env, re] of cases) {
    const msg = errorFor(env);
    assert.match(msg, re);
    assert.equal(msg.includes('\n'), false);
    assert.equal(msg.includes(Buffer.alloc(32, 9).toString('base64')), false, 'never the secret in the message');
  }
});
