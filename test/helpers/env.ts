import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import pg from 'pg';
import { Redis } from 'ioredis';
import { loadConfig, type Config } from '../../src/config.js';
import { createPool } from '../../src/db/index.js';
import { runMigrations } from '../../src/db/migrate.js';

/**
 * Where the tests find Postgres and Redis:
 *   1. DATABASE_URL / REDIS_URL when set;
 *   2. else containers started by testcontainers when a Docker engine answers;
 *   3. else the local services (127.0.0.1:5432 as postgres, 127.0.0.1:6379).
 * Each test file gets its own database and its own Redis key prefix.
 */
interface Services {
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

export function getServices(): Promise<Services> {
  services ??= startServices();
  return services;
}

function withDatabase(url: string, name: string): string {
  const u = new URL(url);
  u.pathname = `/${name}`;
  return u.toString();
}

export interface TestDatabase {
  url: string;
  name: string;
  drop: () => Promise<void>;
}

/** A fresh database with every migration applied. */
export async function createTestDatabase(label = 'test'): Promise<TestDatabase> {
  const { adminDatabaseUrl } = await getServices();
  const name = `oura_${label.replace(/[^a-z0-9]/gi, '_').toLowerCase()}_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: adminDatabaseUrl });
  await admin.connect();
  await admin.query(`create database ${name}`);
  await admin.end();
  const url = withDatabase(adminDatabaseUrl, name);
  const pool = createPool({ url });
  await runMigrations(pool);
  await pool.end();
  return {
    url,
    name,
    drop: async () => {
      const c = new pg.Client({ connectionString: adminDatabaseUrl });
      await c.connect();
      await c.query(`drop database if exists ${name} with (force)`);
      await c.end();
    },
  };
}

export function uniquePrefix(label = 't'): string {
  return `${label}-${randomBytes(4).toString('hex')}`;
}

/** Removes every Redis key under a prefix. */
export async function clearPrefix(redisUrl: string, prefix: string): Promise<void> {
  const r = new Redis(redisUrl);
  let cursor = '0';
  do {
    const [next, keys] = await r.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
    cursor = next;
    if (keys.length) await r.del(...keys);
  } while (cursor !== '0');
  await r.quit();
}

export const TEST_SECRETS = {
  OURA_CLIENT_ID: 'test-client-id',
  OURA_CLIENT_SECRET: 'test-client-secret-0123456789',
  OURA_WEBHOOK_VERIFICATION_TOKEN: 'test-verification-token',
  TOKEN_ENCRYPTION_KEY: Buffer.alloc(32, 7).toString('base64'),
  ADMIN_TOKEN: 'test-admin-token-0123456789',
};

/** A full service config pointing at the given database, Redis and simulator. */
export function testConfig(env: Record<string, string | undefined>): Config {
  return loadConfig({
    ...TEST_SECRETS,
    PUBLIC_BASE_URL: 'http://127.0.0.1:1',
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
    WORKER_CONCURRENCY: '8',
    ...env,
  });
}
