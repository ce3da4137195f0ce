import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { Writable } from 'node:stream';
import { after, test } from 'node:test';
import { createDeps } from '../src/deps.js';
import { createLogger } from '../src/logger.js';
import { eventually, freePort } from './helpers/util.js';
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
  const port = await freePort();
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
