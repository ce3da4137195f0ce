import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { createEventQueue, eventPriority, STRAGGLER_PRIORITY } from '../src/queues/index.js';
import { clearPrefix, getServices, uniquePrefix } from './helpers/env.js';

let url: string;
let redis: Redis;
const prefix = uniquePrefix('order');
before(async () => {
  url = (await getServices()).redisUrl;
  redis = new Redis(url, { maxRetriesPerRequest: null });
});
after(async () => {
  await redis.quit();
  await clearPrefix(url, prefix);
});

test('an event held back returns to its place by age: the oldest waits are served first', async () => {
  const queue = createEventQueue(redis, prefix);
  const t0 = Date.now();
  // Event 1 arrived first and was held back (coalescing); events 2-4 came two minutes later; 5 is a straggler the sweeper found.
  await queue.add('fetch', { eventId: 1 }, { jobId: 'evt-1', priority: eventPriority(t0), delay: 150 });
  for (const id of [2, 3, 4]) await queue.add('fetch', { eventId: id }, { jobId: `evt-${id}`, priority: eventPriority(t0 + 120_000) });
  await queue.add('fetch', { eventId: 5 }, { jobId: 'evt-5', priority: STRAGGLER_PRIORITY });
  await new Promise((r) => setTimeout(r, 300));

  const order: number[] = [];
  const done = new Promise<void>((resolve) => {
    const worker = new Worker(
      queue.name,
      async (job) => {
        order.push(job.data.eventId as number);
        if (order.length === 5) setImmediate(() => void worker.close().then(resolve));
      },
      { connection: redis.duplicate(), prefix, concurrency: 1 },
    );
  });
  await done;
  await queue.close();
  assert.deepEqual(order, [5, 1, 2, 3, 4]);
  assert.ok(eventPriority(t0) < eventPriority(t0 + 60_000), 'a later minute runs later');
});
