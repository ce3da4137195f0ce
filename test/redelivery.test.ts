import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { createDeps, type Deps } from '../src/deps.js';
import type { OuraClient } from '../src/oura/client.js';
import type { Limiter } from '../src/oura/limiter.js';
import type { TokenService } from '../src/oura/tokens.js';
import { generateDocument } from '../src/sim/generate.js';
import { createRng } from '../src/sim/prng.js';
import { processEvent } from '../src/workers/process-event.js';
import { clearPrefix, createTestDatabase, getServices, testConfig, uniquePrefix, type TestDatabase } from './helpers/env.js';

/**
 * Oura's event_time has one-second precision, so two changes of a document
 * within a second are delivered as the same event. When the repeat arrives
 * while the first delivery's fetch is under way, that fetch may have read the
 * document before the second change: the event must be served again, not
 * marked done with the older version.
 */
describe('a delivery repeated while its document is being fetched', () => {
  let db: TestDatabase;
  let deps: Deps;
  let redisUrl: string;
  const prefix = uniquePrefix('redeliver');

  before(async () => {
    db = await createTestDatabase('redelivery');
    redisUrl = (await getServices()).redisUrl;
    deps = createDeps(testConfig({ DATABASE_URL: db.url, REDIS_URL: redisUrl }), { prefix });
    await deps.users.upsertConnected({
      id: 'user-r',
      personalInfo: {},
      accessTokenEnc: deps.cipher.encrypt('a'),
      refreshTokenEnc: deps.cipher.encrypt('r'),
      expiresAt: null,
      scopes: null,
    });
  });
  after(async () => {
    await deps.close();
    await clearPrefix(redisUrl, prefix);
    await db.drop();
  });

  test('the newer version is stored and the event ends done', async () => {
    const ctx = { day: new Date().toISOString().slice(0, 10), offset: '+00:00', rng: createRng(7) };
    const v1 = generateDocument('workout', ctx, { intensity: 'easy' });
    const v2 = { ...v1, intensity: 'hard', label: 'changed a moment later' };
    const event = {
      event_type: 'update',
      data_type: 'workout',
      object_id: v1.id as string,
      event_time: new Date(Math.floor(Date.now() / 1000) * 1000).toISOString(),
      user_id: 'user-r',
    };
    const [recorded] = await deps.events.recordDeliveries([{ event, supported: true }]);

    // Oura, seen through the client: the first read returns v1, and while it is in
    // flight the document changes again and Oura delivers the same event once more.
    let reads = 0;
    const oura = {
      async getDocument() {
        reads++;
        if (reads === 1) {
          const [repeat] = await deps.events.recordDeliveries([{ event, supported: true }]);
          assert.equal(repeat!.inserted, false, 'the repeat shares the event');
          return v1;
        }
        return v2;
      },
    } as unknown as OuraClient;
    const tokens = { withToken: (_u: string, fn: (t: string) => Promise<unknown>) => fn('token') } as unknown as TokenService;
    const limiter = { acquire: async () => ({ id: 'permit' }) } as unknown as Limiter;

    const row = (await deps.events.get(recorded!.id))!;
    const outcome = await processEvent({ ...deps, oura, tokens, limiter }, row);
    assert.equal(outcome, 'served');
    assert.equal(reads, 2, 'read again after the repeat');
    const { rows } = await deps.pool.query<{ document: { intensity: string } }>('select document from oura.workout where id = $1', [v1.id]);
    assert.equal(rows[0]?.document.intensity, 'hard', 'the newer version is stored');
    const after = await deps.events.get(recorded!.id);
    assert.equal(after?.status, 'done');
    assert.equal(after?.deliveries, 2);
  });
});
