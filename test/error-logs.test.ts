import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { Writable } from 'node:stream';
import { after, test } from 'node:test';
import { createDeps } from '../src/deps.js';
import { sql } from 'drizzle-orm';
import { createLogger, scrubError } from '../src/logger.js';
import { eventually, freeStablePort } from '../dev/util.js';
import { testConfig, uniquePrefix } from './helpers/env.js';

/** A Redis of the test's own, to stop and start again. */
function startRedis(port: number): ChildProcess {
  return spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
}

const children: ChildProcess[] = [];
after(() => {
  for (const c of children) c.kill('SIGKILL');
});

test('a Redis outage is logged once when it starts and once when it ends, not once per retry', async () => {
  const port = await freeStablePort();
  children.push(startRedis(port));
  const lines: Array<{ msg: string; connection?: string; err?: { message?: string; stack?: string } }> = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const l of chunk.toString().split('\n')) if (l.trim()) lines.push(JSON.parse(l));
      done();
    },
  });
  const deps = createDeps(testConfig({ DATABASE_URL: 'postgres://postgres@127.0.0.1:5432/postgres', REDIS_URL: `redis://127.0.0.1:${port}` }), {
    prefix: uniquePrefix('outage'),
    log: createLogger('info', sink),
  });
  try {
    await eventually('connected', async () => (await deps.redis.ping().catch(() => null)) === 'PONG');
    children.pop()!.kill('SIGKILL');
    // ioredis retries every few hundred milliseconds meanwhile: many errors, one line.
    await new Promise((r) => setTimeout(r, 3000));
    const failed = lines.filter((l) => l.msg === 'redis: connection failed');
    assert.equal(failed.length, 1, JSON.stringify(lines.map((l) => l.msg)));
    assert.ok(failed[0]!.err?.message && failed[0]!.err.stack, 'the error is logged with its message and stack');

    children.push(startRedis(port));
    await eventually('the recovery logged', async () => lines.some((l) => l.msg === 'redis: connection restored'), { timeoutMs: 15_000 });
    assert.equal(lines.filter((l) => l.msg === 'redis: connection failed').length, 1);
    assert.equal((await deps.redis.ping()), 'PONG');
  } finally {
    await deps.close();
  }
});

test('a failed query logs and fails its job without the values it carried', async () => {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(chunk.toString());
      done();
    },
  });
  const log = createLogger('info', sink);
  const deps = createDeps(testConfig({ DATABASE_URL: 'postgres://postgres@127.0.0.1:5432/postgres', REDIS_URL: 'redis://127.0.0.1:6379' }), {
    prefix: uniquePrefix('scrub'),
    log,
  });
  try {
    // What an upsert of a health document would bind, in a statement Postgres refuses.
    const secret = '{"average_heart_rate": 61.5, "note": "a health document"}';
    const err = await deps.db.execute(sql`select ${secret}::int`).then(
      () => assert.fail('the query succeeded'),
      (e: unknown) => e as Error,
    );
    assert.ok(err.message.includes(secret), 'the driver error carries the bound value (what this test guards against)');
    log.error({ err }, 'query failed');
    const line = lines.join('');
    assert.ok(line.includes('query failed') && line.includes('Failed query'), line);
    assert.ok(!line.includes('a health document'), `the log line holds the value: ${line}`);
    const scrubbed = scrubError(err) as Error;
    assert.ok(!scrubbed.message.includes('a health document') && !String(scrubbed.stack).includes('a health document'));
    assert.match(scrubbed.message, /^Failed query: select \$1::int/);
  } finally {
    await deps.close();
  }
});
