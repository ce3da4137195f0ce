import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { test } from 'node:test';
import { repoRoot } from '../dev/service.js';
import pg from 'pg';
import { DOCUMENT_TYPES } from '../src/oura/registry.js';
import { clearPrefix, getServices } from './helpers/env.js';


function run(args: string[], env: Record<string, string | undefined>, timeoutMs: number) {
  return new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(repoRoot, 'scripts/demo.ts'), ...args], {
      cwd: repoRoot,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const kill = setTimeout(() => child.kill('SIGTERM'), timeoutMs);
    child.on('exit', (code) => {
      clearTimeout(kill);
      resolve({ code, stdout, stderr });
    });
  });
}

test('npm run demo ends with its summary table, exits 0, and leaves every simulated document in its database', { timeout: 150_000 }, async (t) => {
  const { adminDatabaseUrl, redisUrl } = await getServices();
  const suffix = randomBytes(4).toString('hex');
  const database = `oura_demo_test_${suffix}`;
  const prefix = `demo-test-${suffix}`;
  const admin = new pg.Client({ connectionString: adminDatabaseUrl });
  await admin.connect();
  t.after(async () => {
    await admin.query(`drop database if exists ${database} with (force)`);
    await admin.end();
    await clearPrefix(redisUrl, prefix);
  });

  const { code, stdout, stderr } = await run(
    // The demo's api and worker compiled, as the tests run the service (npm test builds dist/ first).
    ['--quick', '--compiled', '--no-progress', '--database', database, '--prefix', prefix],
    { ...process.env, DATABASE_URL: adminDatabaseUrl, REDIS_URL: redisUrl },
    120_000,
  );
  assert.equal(code, 0, `demo exited ${code}\n--- stdout\n${stdout}\n--- stderr\n${stderr}`);

  // The summary table: per type, backfill and webhooks both landed something, Postgres equals Oura.
  assert.match(stdout, /document type\s+backfill\s+webhooks\s+in Postgres\s+at Oura\s+equal/);
  const totalRow = /^\s*total\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+yes$/m.exec(stdout);
  assert.ok(totalRow, `no total row in:\n${stdout}`);
  const [backfill, webhooks, inPostgres, atOura] = totalRow.slice(1).map(Number) as [number, number, number, number];
  assert.ok(backfill > 0, 'the backfill on connect landed documents');
  assert.ok(webhooks > 0, 'the webhooks landed documents');
  assert.equal(inPostgres, atOura);
  assert.equal(backfill + webhooks, inPostgres);
  assert.match(stdout, /Oura requests: webhooks\s+\d+/);
  assert.match(stdout, /events per request\s+\d+\.\d\d/);
  assert.match(stdout, /freshness p50 \/ p99\s+\d+\.\d\d s \/ \d+\.\d\d s/);
  assert.match(stdout, new RegExp(`✓ all ${atOura} documents the simulator holds are in Postgres`));

  // The documents are in the demo's database, as a partner would read them.
  const url = new URL(adminDatabaseUrl);
  url.pathname = `/${database}`;
  const db = new pg.Client({ connectionString: url.toString() });
  await db.connect();
  try {
    let rows = 0;
    for (const type of DOCUMENT_TYPES) rows += Number((await db.query(`select count(*) as n from oura."${type}"`)).rows[0].n);
    assert.equal(rows, inPostgres);
    const users = await db.query(`select count(*)::int as n from oura.users where status = 'active'`);
    assert.equal(users.rows[0].n, 3);
    const events = await db.query<{ status: string; n: number }>(`select status, count(*)::int as n from oura.webhook_events group by status`);
    assert.deepEqual(events.rows.map((r) => r.status), ['done'], 'every webhook event was processed');
    assert.ok(events.rows[0]!.n > 0);
  } finally {
    await db.end();
  }
});
