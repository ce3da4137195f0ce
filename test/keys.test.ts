import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { createDeps } from '../src/deps.js';
import { clearPrefix, serviceArgs, testConfig } from './helpers/env.js';
import { repoRoot, startStack, type Stack } from './helpers/stack.js';

describe('rotating TOKEN_ENCRYPTION_KEY', () => {
  let stack: Stack;
  before(async () => {
    stack = await startStack({ label: 'keys', inProcessWorker: false });
  });
  after(async () => {
    await stack?.close();
    // The services the rotation builds beside the stack's keep their keys under prefixes of their own.
    if (stack) for (const p of ['rot', 'new', 'old']) await clearPrefix(stack.env.REDIS_URL!, `${stack.prefix}-${p}`);
  });

  test('the old key keeps working as a previous key, tokens reencrypt moves every token to the new one', async () => {
    const userId = await stack.connectUser();
    const oldKey = stack.env.TOKEN_ENCRYPTION_KEY!;
    const newKey = randomBytes(32).toString('base64');
    const rotating = { ...stack.env, TOKEN_ENCRYPTION_KEY: newKey, TOKEN_ENCRYPTION_KEY_PREVIOUS: oldKey };

    // During the rotation: the new key writes, the old one still reads.
    const during = createDeps(testConfig(rotating), { prefix: `${stack.prefix}-rot` });
    try {
      const info = await during.tokens.withToken(userId, (t) => during.oura.personalInfo(t));
      assert.equal(info.id, userId);
    } finally {
      await during.close();
    }

    const run = spawnSync(process.execPath, serviceArgs('cli/main', ['tokens', 'reencrypt']), {
      cwd: repoRoot,
      env: { PATH: process.env.PATH, ...rotating, LOG_LEVEL: 'silent' },
      encoding: 'utf8',
      timeout: 60_000,
    });
    assert.equal(run.status, 0, run.stderr);
    assert.match(run.stdout, /^1 users: 1 re-encrypted, 0 already under the current key, 0 unreadable\n$/);

    // After it: the new key alone reads every token; the old key alone reads none.
    const afterRotation = createDeps(testConfig({ ...stack.env, TOKEN_ENCRYPTION_KEY: newKey }), { prefix: `${stack.prefix}-new` });
    const oldOnly = createDeps(testConfig({ ...stack.env, TOKEN_ENCRYPTION_KEY: oldKey }), { prefix: `${stack.prefix}-old` });
    try {
      const user = await afterRotation.users.get(userId);
      assert.ok(afterRotation.cipher.isCurrent(user!.access_token_enc!));
      const info = await afterRotation.tokens.withToken(userId, (t) => afterRotation.oura.personalInfo(t));
      assert.equal(info.id, userId);
      assert.throws(() => oldOnly.cipher.decrypt(user!.access_token_enc!), /does not match/);
    } finally {
      await afterRotation.close();
      await oldOnly.close();
    }
  });

  test('a malformed previous key stops start-up with one line naming it', () => {
    assert.throws(() => testConfig({ ...stack.env, TOKEN_ENCRYPTION_KEY_PREVIOUS: 'short' }), /^ConfigError: config: TOKEN_ENCRYPTION_KEY_PREVIOUS expected 32 bytes/);
  });
});
