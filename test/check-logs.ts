import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { repoRoot } from '../dev/service.js';

/**
 * Every stack of a test run writes its logs (in-process and child processes)
 * here, with the secrets its run produced beside them. `npm test` empties it
 * first.
 */
export const TEST_LOG_DIR = path.join(repoRoot, '.test-logs');

/**
 * The step after the suite (test/run.ts): every stack of the run wrote its
 * logs and the secrets its run produced (access and refresh tokens,
 * authorization codes, webhook signatures, the client secret, verification
 * and admin tokens, the encryption key) to `dir`. None of them may appear in
 * any log line, nor may document contents. Returns the problems found (empty
 * when the logs are clean) and what was checked. `wholeSuite`: the run must
 * have logged something (a few test files may log nothing).
 */
export function checkLogs(dir: string, { wholeSuite }: { wholeSuite: boolean }): { problems: string[]; summary: string } {
  const files = existsSync(dir) ? readdirSync(dir) : [];
  const logs = files.filter((f) => f.endsWith('.log'));
  const secretFiles = files.filter((f) => f.endsWith('.secrets.json'));
  if (logs.length === 0 || secretFiles.length === 0) {
    return { problems: wholeSuite ? [`no logs and secrets in ${dir}: the suite wrote nothing to check`] : [], summary: 'no logs to check' };
  }

  const secrets = new Set<string>();
  for (const f of secretFiles) for (const s of JSON.parse(readFileSync(path.join(dir, f), 'utf8')) as string[]) if (s.length >= 8) secrets.add(s);
  // Signatures may be logged in either case; so may the base64 key in its url-safe form.
  for (const s of [...secrets]) {
    secrets.add(s.toLowerCase());
    secrets.add(s.toUpperCase());
  }
  const problems: string[] = [];
  let lines = 0;
  let bytes = 0;
  for (const f of logs) {
    const text = readFileSync(path.join(dir, f), 'utf8');
    bytes += text.length;
    lines += text.split('\n').length;
    for (const s of secrets) if (text.includes(s)) problems.push(`${f} contains a secret (${s.slice(0, 4)}…)`);
    // Document contents: field names only documents carry.
    for (const marker of ['"contributors"', '"sleep_phase_5_min"', '"heart_rate":{', '"bpm"']) {
      if (text.includes(marker)) problems.push(`${f} contains document contents (${marker})`);
    }
  }
  if (wholeSuite && lines <= 100) problems.push(`the run logged too little to check (${lines} lines)`);
  return { problems, summary: `checked ${logs.length} log files (${lines} lines, ${(bytes / 1e6).toFixed(1)} MB) against ${secrets.size} secrets` };
}
