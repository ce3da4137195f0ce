import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { repoRoot } from '../dev/service.js';
import { describeSchema, renderSchemaDoc, type RelationDoc } from '../dev/schema-doc.js';
import { createPool } from '../src/db/index.js';
import { DOCUMENT_TYPES } from '../src/oura/registry.js';
import { createTestDatabase, type TestDatabase } from './helpers/env.js';

/** Schema oura as the migrations make it: every table and column explained, and docs/schema.md saying the same. */
let db: TestDatabase;
let relations: RelationDoc[];
before(async () => {
  db = await createTestDatabase('schema_doc');
  const pool = createPool({ url: db.url, max: 1 });
  try {
    relations = await describeSchema(pool);
  } finally {
    await pool.end();
  }
});
after(async () => {
  await db?.drop();
});

test('every table, view and column of schema oura carries a comment; documents take the spec\'s words', () => {
  const names = relations.map((r) => r.name);
  for (const t of [...DOCUMENT_TYPES, 'heartrate', 'ring_battery_level', 'users', 'connected_users', 'webhook_events', 'webhook_inbox', 'backfill_progress']) {
    assert.ok(names.includes(t), `oura.${t} is described`);
  }
  const missing = relations.flatMap((r) => [...(r.comment ? [] : [r.name]), ...r.columns.filter((c) => !c.comment).map((c) => `${r.name}.${c.name}`)]);
  assert.deepEqual(missing, [], 'objects without a comment');
  const dailySleep = relations.find((r) => r.name === 'daily_sleep')!;
  assert.match(dailySleep.comment!, /PublicDailySleep/);
  assert.equal(dailySleep.columns.find((c) => c.name === 'score')!.comment, 'Daily sleep score.', 'from the Oura spec');
  assert.equal(relations.find((r) => r.name === 'users')!.readerSelects, false);
  assert.equal(relations.find((r) => r.name === 'connected_users')!.readerSelects, true);
});

test('docs/schema.md says what the schema is (else: npm run gen:schema-doc)', () => {
  const file = readFileSync(path.join(repoRoot, 'docs', 'schema.md'), 'utf8');
  const expected = renderSchemaDoc(relations);
  if (file !== expected) {
    const a = file.split('\n');
    const b = expected.split('\n');
    const i = a.findIndex((line, k) => line !== b[k]);
    assert.fail(`docs/schema.md differs from the schema at line ${i + 1}:\n  file:   ${a[i]}\n  schema: ${b[i]}\nrun npm run gen:schema-doc`);
  }
});
