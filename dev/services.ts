import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import pg from 'pg';
import { Redis } from 'ioredis';
import { createPool } from '../src/db/index.js';
import { runMigrations } from '../src/db/migrate.js';

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

/**
 * A database with every migration applied: `name` dropped and re-created
 * when given (a run whose data is kept to be looked at), else a fresh one
 * named after `label` with a random suffix.
 */
export async function createDatabase(adminDatabaseUrl: string, opts: { label?: string; name?: string } = {}): Promise<Database> {
  const name = opts.name ?? uniqueDatabaseName(opts.label);
  await withAdmin(adminDatabaseUrl, async (c) => {
    if (opts.name) await c.query(`drop database if exists "${name}" with (force)`);
    await c.query(`create database "${name}"`);
  });
  const url = withDatabase(adminDatabaseUrl, name);
  const pool = createPool({ url, max: 2 });
  try {
    await runMigrations(pool);
  } finally {
    await pool.end();
  }
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

/** Removes every Redis key under a prefix; returns how many there were. */
export async function clearPrefix(redisUrl: string, prefix: string): Promise<number> {
  const r = new Redis(redisUrl, { maxRetriesPerRequest: 2 });
  r.on('error', () => {}); // a command fails with it; a server gone (a test's) must not print "Unhandled error event"
  let removed = 0;
  try {
    let cursor = '0';
    do {
      const [next, keys] = await r.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length) removed += await r.del(...keys);
    } while (cursor !== '0');
  } finally {
    await r.quit().catch(() => r.disconnect());
  }
  return removed;
}
