import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { Cluster, type Redis } from 'ioredis';
import { createPool } from '../src/db/index.js';
import { migrationsFolder, runMigrations } from '../src/db/migrate.js';
import { connectRedisUrl } from '../src/redis-connect.js';
import { withTimeout } from '../src/timeout.js';

/**
 * Where a dev stack finds Postgres and Redis:
 *   1. DATABASE_URL / REDIS_URL when set;
 *   2. else containers started by testcontainers when a Docker engine answers;
 *   3. else the local services (127.0.0.1:5432 as postgres, 127.0.0.1:6379).
 * Each stack then makes its own database there and uses its own Redis key prefix.
 */
export interface Services {
  /** A connection allowed to create and drop databases. */
  adminDatabaseUrl: string;
  redisUrl: string;
  stop: () => Promise<void>;
}

let services: Promise<Services> | null = null;

async function dockerAnswers(): Promise<boolean> {
  if (!process.env.DOCKER_HOST && !existsSync('/var/run/docker.sock')) return false;
  try {
    const { getContainerRuntimeClient } = await import('testcontainers');
    await getContainerRuntimeClient();
    return true;
  } catch {
    return false;
  }
}

async function startServices(): Promise<Services> {
  const envDb = process.env.DATABASE_URL;
  const envRedis = process.env.REDIS_URL;
  const stops: Array<() => Promise<unknown>> = [];
  let adminDatabaseUrl = envDb ?? '';
  let redisUrl = envRedis ?? '';
  if ((!envDb || !envRedis) && (await dockerAnswers())) {
    const { GenericContainer, Wait } = await import('testcontainers');
    if (!envDb) {
      const c = await new GenericContainer('postgres:16-alpine')
        .withEnvironment({ POSTGRES_HOST_AUTH_METHOD: 'trust' })
        .withExposedPorts(5432)
        .withWaitStrategy(Wait.forLogMessage(/database system is ready to accept connections/, 2))
        .start();
      stops.push(() => c.stop());
      adminDatabaseUrl = `postgres://postgres@${c.getHost()}:${c.getMappedPort(5432)}/postgres`;
    }
    if (!envRedis) {
      const c = await new GenericContainer('redis:7-alpine').withExposedPorts(6379).start();
      stops.push(() => c.stop());
      redisUrl = `redis://${c.getHost()}:${c.getMappedPort(6379)}`;
    }
  }
  adminDatabaseUrl ||= 'postgres://postgres@127.0.0.1:5432/postgres';
  redisUrl ||= 'redis://127.0.0.1:6379';
  return {
    adminDatabaseUrl,
    redisUrl,
    stop: async () => {
      for (const s of stops) await s();
    },
  };
}

/** Postgres and Redis for this process, found (or started) once. */
export function getServices(): Promise<Services> {
  services ??= startServices();
  return services;
}

/** The URL of database `name` on the server of `url`. */
export function withDatabase(url: string, name: string): string {
  const u = new URL(url);
  u.pathname = `/${name}`;
  return u.toString();
}

export interface Database {
  url: string;
  name: string;
  drop: () => Promise<void>;
}

/** Runs `fn` on a connection to the server's admin database. */
async function withAdmin<T>(adminDatabaseUrl: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: adminDatabaseUrl });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

/** Today (UTC) as YYYYMMDD: templates of earlier days are dropped. */
const templateDay = () => new Date().toISOString().slice(0, 10).replaceAll('-', '');

/**
 * The name of the template database for what the migrations make today: the
 * migrations folder, the steps runMigrations takes after them (partitioning,
 * comments) and the day (partitions are made for the months around it).
 */
function templateName(): string {
  const hash = createHash('sha256');
  const folder = migrationsFolder();
  const walk = (dir: string): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      const file = path.join(dir, entry.name);
      if (entry.isDirectory()) walk(file);
      else hash.update(`${path.relative(folder, file)}\0`).update(readFileSync(file));
    }
  };
  walk(folder);
  // What runMigrations does after the migrations: partitioning and comments.
  for (const file of ['migrate.ts', 'partitions.ts', 'comments.ts', 'schema/comments.generated.ts']) {
    hash.update(readFileSync(path.join(path.dirname(folder), 'src', 'db', file)));
  }
  return `oura_template_${templateDay()}_${hash.digest('hex').slice(0, 12)}`;
}

/**
 * Makes the template database once per server (a lock keeps concurrent test
 * files from racing), by running the migrations as the service does, and
 * drops the templates of other migrations or days.
 */
async function ensureTemplate(adminDatabaseUrl: string): Promise<string> {
  const name = templateName();
  await withAdmin(adminDatabaseUrl, async (c) => {
    await c.query(`select pg_advisory_lock(hashtext('oura-ingest dev template'))`);
    try {
      const { rowCount } = await c.query('select 1 from pg_database where datname = $1', [name]);
      if (rowCount) return;
      // Other runs may still copy today's templates of other migrations (another checkout): only earlier days' go.
      const old = await c.query<{ datname: string }>(`select datname from pg_database where datname ~ '^oura_template_[0-9]{8}_' and substr(datname, 15, 8) < $1`, [
        templateDay(),
      ]);
      for (const { datname } of old.rows) await c.query(`drop database if exists "${datname}"`).catch(() => {});
      // Made under another name and renamed when complete: a run killed half-way leaves no half template.
      const building = `${name}_building`;
      await c.query(`drop database if exists "${building}" with (force)`);
      await c.query(`create database "${building}"`);
      const pool = createPool({ url: withDatabase(adminDatabaseUrl, building), max: 2 });
      try {
        await runMigrations(pool);
      } finally {
        await pool.end();
      }
      await c.query(`alter database "${building}" rename to "${name}"`);
    } finally {
      await c.query(`select pg_advisory_unlock(hashtext('oura-ingest dev template'))`);
    }
  });
  return name;
}

/**
 * A database with every migration applied: `name` dropped and re-created
 * when given (a run whose data is kept to be looked at), else a fresh one
 * named after `label` with a random suffix. It is a copy of a template the
 * migrations made (ensureTemplate): a copy takes a fraction of the time
 * migrating does, and the suite makes dozens.
 */
export async function createDatabase(adminDatabaseUrl: string, opts: { label?: string; name?: string } = {}): Promise<Database> {
  const name = opts.name ?? uniqueDatabaseName(opts.label);
  const template = await ensureTemplate(adminDatabaseUrl);
  await withAdmin(adminDatabaseUrl, async (c) => {
    if (opts.name) await c.query(`drop database if exists "${name}" with (force)`);
    await c.query(`create database "${name}" template "${template}"`);
  });
  const url = withDatabase(adminDatabaseUrl, name);
  return { url, name, drop: () => dropDatabase(adminDatabaseUrl, name) };
}

/** Drops database `name` (if it exists) on the server of `adminDatabaseUrl`, closing its connections. */
export async function dropDatabase(adminDatabaseUrl: string, name: string): Promise<void> {
  await withAdmin(adminDatabaseUrl, async (c) => void (await c.query(`drop database if exists "${name}" with (force)`)));
}

/** A database name of its own for `label`: `oura_<label>_<random>`. */
export function uniqueDatabaseName(label = 'dev'): string {
  return `oura_${label.replace(/[^a-z0-9]/gi, '_').toLowerCase()}_${randomBytes(4).toString('hex')}`;
}

export function uniquePrefix(label = 't'): string {
  return `${label}-${randomBytes(4).toString('hex')}`;
}

/** Removes every Redis key under a prefix; returns how many there were. `redisUrl` may name a cluster (`redis+cluster://`). */
export async function clearPrefix(redisUrl: string, prefix: string): Promise<number> {
  const r = connectRedisUrl(redisUrl, { maxRetriesPerRequest: 2 });
  r.on('error', () => {}); // a command fails with it; a server gone (a test's) must not print "Unhandled error event"
  let removed = 0;
  try {
    // A cluster's keys are spread over its masters: each is scanned, and keys are removed one by one (one slot each).
    const servers = r instanceof Cluster ? await clusterMasters(r) : [r];
    for (const server of servers) {
      let cursor = '0';
      do {
        const [next, keys] = await server.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
        cursor = next;
        if (keys.length === 0) continue;
        if (r instanceof Cluster) for (const k of keys) removed += await r.del(k);
        else removed += await server.del(...keys);
      } while (cursor !== '0');
    }
  } finally {
    await r.quit().catch(() => r.disconnect());
  }
  return removed;
}

/** The masters of a cluster, once it has learnt them. */
async function clusterMasters(cluster: Cluster): Promise<Redis[]> {
  if (cluster.status !== 'ready') await withTimeout(new Promise((resolve) => cluster.once('ready', resolve)), 10_000, 'redis cluster ready');
  return cluster.nodes('master');
}
