import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { createLogger } from '../src/logger.js';
import { RequestLogger } from '../src/server/request-logger.js';

function memoryLogger(level: string) {
  const lines: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const l of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(l) as Record<string, unknown>);
      done();
    },
  });
  return { log: createLogger(level, sink), lines };
}

test("a request's logger writes at its route's level, with the request id and the same redaction", () => {
  const { log, lines } = memoryLogger('info');
  const req = new RequestLogger(log, { reqId: 'req-1' }, { level: 'warn' });
  assert.equal(req.level, 'warn');
  assert.equal(req.isLevelEnabled('info'), false);
  assert.equal(req.isLevelEnabled('error'), true);
  req.info({ outcome: 'accepted' }, 'webhook received');
  req.debug('nothing');
  assert.equal(lines.length, 0, 'below the route level: no line');

  req.warn({ req: { headers: { 'x-oura-signature': 'ABCDEF' } }, code: 'invalid_signature' }, 'webhook delivery refused');
  assert.equal(lines.length, 1);
  assert.equal(lines[0]!.reqId, 'req-1');
  assert.equal(lines[0]!.code, 'invalid_signature');
  assert.equal(lines[0]!.msg, 'webhook delivery refused');
  assert.equal(lines[0]!.level, 40);
  assert.doesNotMatch(JSON.stringify(lines[0]), /ABCDEF/, 'the signature is redacted');

  req.child({ userId: 'u-1' }).error('failed');
  assert.equal(lines[1]!.reqId, 'req-1');
  assert.equal(lines[1]!.userId, 'u-1');
});

test('without a route level it follows the parent logger', () => {
  const { log, lines } = memoryLogger('debug');
  const req = new RequestLogger(log, { reqId: 'req-2' }, {});
  assert.equal(req.level, 'debug');
  req.debug({ eventId: 7 }, 'webhook received');
  req.trace('too fine');
  assert.deepEqual(
    lines.map((l) => [l.reqId, l.eventId, l.msg]),
    [['req-2', 7, 'webhook received']],
  );
});
