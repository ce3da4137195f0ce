import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { TEST_LOG_DIR } from './helpers/stack.js';

/**
 * Runs last (file order): every stack of this test run wrote its logs and the
 * secrets its run produced (access and refresh tokens, authorization codes,
 * webhook signatures, the client secret, verification and admin tokens, the
 * encryption key) to .test-logs/. None of them may appear in any log line,
 * nor may document contents.
 */
test('logs of the test run contain no token, secret, signature or document', (t) => {
  if (!existsSync(TEST_LOG_DIR)) {
    t.skip('no .test-logs folder: run the whole suite (npm test) to check the logs');
    return;
  }
  const files = readdirSync(TEST_LOG_DIR);
  const logs = files.filter((f) => f.endsWith('.log'));
  const secretFiles = files.filter((f) => f.endsWith('.secrets.json'));
  if (logs.length === 0 || secretFiles.length === 0) {
    t.skip('no logs were written: run the whole suite (npm test) to check the logs');
    return;
  }
  const secrets = new Set<string>();
  for (const f of secretFiles) for (const s of JSON.parse(readFileSync(path.join(TEST_LOG_DIR, f), 'utf8')) as string[]) if (s.length >= 8) secrets.add(s);
  // Signatures may be logged in either case; so may the base64 key in its url-safe form.
  for (const s of [...secrets]) {
    secrets.add(s.toLowerCase());
    secrets.add(s.toUpperCase());
  }
  let lines = 0;
  let bytes = 0;
  for (const f of logs) {
    const text = readFileSync(path.join(TEST_LOG_DIR, f), 'utf8');
    bytes += text.length;
    lines += text.split('\n').length;
    for (const s of secrets) assert.equal(text.includes(s), false, `${f} contains a secret (${s.slice(0, 4)}…)`);
    // Document contents: field names only documents carry.
    for (const marker of ['"contributors"', '"sleep_phase_5_min"', '"heart_rate":{', '"bpm"']) {
      assert.equal(text.includes(marker), false, `${f} contains document contents (${marker})`);
    }
  }
  assert.ok(lines > 100, `the run logged something to check (${lines} lines)`);
  console.log(`checked ${logs.length} log files (${lines} lines, ${(bytes / 1e6).toFixed(1)} MB) against ${secrets.size} secrets`);
});
