import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { Redis } from 'ioredis';
import pino from 'pino';
import { createOuraClient, OuraApiError } from '../src/oura/client.js';
import { createLimiter } from '../src/oura/limiter.js';
import { clearPrefix, getServices, uniquePrefix } from './helpers/env.js';

/**
 * Every failure of the Oura client is one OuraApiError, whatever Oura sends:
 * here a server that answers 200 with an HTML page (a proxy's error page, a
 * maintenance page) on every route.
 */
describe('Oura client: a body that is not JSON, or not of the promised shape', () => {
  let server: Server;
  let redis: Redis;
  let redisUrl: string;
  const prefix = uniquePrefix('client');
  let client: ReturnType<typeof createOuraClient>;
  let shapeless: ReturnType<typeof createOuraClient>;

  before(async () => {
    server = createServer((req, res) => {
      if (req.url?.startsWith('/shape/')) {
        // JSON, but not what the route promises.
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ unexpected: true }));
        return;
      }
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end('<html><body>Service temporarily unavailable</body></html>');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    redisUrl = (await getServices()).redisUrl;
    redis = new Redis(redisUrl);
    const make = (root: string) =>
      createOuraClient({
        apiBaseUrl: root,
        tokenUrl: `${root}/oauth/token`,
        clientId: 'id',
        clientSecret: 'secret',
        limiter: createLimiter(redis, { app: { limit: 100, windowS: 1 }, prefix }),
        log: pino({ level: 'silent' }),
      });
    client = make(base);
    shapeless = make(`${base}/shape`);
  });
  after(async () => {
    await new Promise((r) => server.close(r));
    await clearPrefix(redisUrl, prefix);
    await redis.quit();
  });

  const rejectsAsBadResponse = async (what: string, p: Promise<unknown>) => {
    const err = await p.then(
      () => assert.fail(`${what}: resolved`),
      (e: unknown) => e,
    );
    assert.ok(err instanceof OuraApiError, `${what}: ${String(err)}`);
    assert.equal(err.code, 'bad_response', what);
    assert.equal(err.retryable, true, `${what}: retryable (a proxy's page is usually passing)`);
  };

  test('the token endpoint (refresh and code exchange)', async () => {
    await rejectsAsBadResponse('refresh', client.refresh('a-refresh-token'));
    await rejectsAsBadResponse('exchange', client.exchangeCode('a-code', 'http://127.0.0.1/cb'));
  });

  test('data routes and the application routes', async () => {
    await rejectsAsBadResponse('document', client.getDocument('a-token', 'sleep', 'id-1'));
    await rejectsAsBadResponse('personal info', client.personalInfo('a-token'));
    await rejectsAsBadResponse('subscriptions', client.appRequest('webhook/subscription', 'GET', '/v2/webhook/subscription'));
  });

  test('JSON of the wrong shape: a collection page, personal info, a token response', async () => {
    const pages = async () => {
      for await (const _ of shapeless.listDocuments('a-token', 'sleep', { startDate: '2026-01-01', endDate: '2026-01-02' })) void _;
    };
    await rejectsAsBadResponse('collection', pages());
    await rejectsAsBadResponse('personal info', shapeless.personalInfo('a-token'));
    await rejectsAsBadResponse('refresh', shapeless.refresh('a-refresh-token'));
  });
});

describe('Oura client: a permit granted before a 429 elsewhere', () => {
  test('its request waits out the pause another process set, and goes after it', async () => {
    const arrivals: number[] = [];
    const server = createServer((_req, res) => {
      arrivals.push(Date.now());
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"id":"x","day":"2026-01-01"}');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const redisUrl = (await getServices()).redisUrl;
    const redis = new Redis(redisUrl);
    const prefix = uniquePrefix('client-pause');
    try {
      const limiter = createLimiter(redis, { app: { limit: 100, windowS: 1 }, prefix });
      const client = createOuraClient({
        apiBaseUrl: base,
        tokenUrl: `${base}/oauth/token`,
        clientId: 'id',
        clientSecret: 'secret',
        limiter,
        log: pino({ level: 'silent' }),
      });
      const permit = await limiter.acquire('a-token');
      // Another process got a 429 from Oura: the application tier stops for 800 ms.
      const pausedAt = Date.now();
      await limiter.pause('application', 800);
      // The answer need not be a valid document: what matters is when the request arrived.
      await client.getDocument('a-token', 'sleep', 'id-1', { permit }).catch(() => null);
      assert.equal(arrivals.length, 1);
      assert.ok(arrivals[0]! - pausedAt >= 750, `the request arrived ${arrivals[0]! - pausedAt} ms into an 800 ms pause`);
    } finally {
      await new Promise((r) => server.close(r));
      await clearPrefix(redisUrl, prefix);
      await redis.quit();
    }
  });
});
