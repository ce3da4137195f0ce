import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { withDatabase } from '../dev/services.js';
import { DOCUMENT_TYPES } from '../src/oura/registry.js';
import { createTestDatabase, type TestDatabase } from './helpers/env.js';

/**
 * oura_reader, the role partner backends read with: a login the operator
 * creates and grants it to reads the data tables and oura.connected_users,
 * and nothing that holds tokens or our bookkeeping.
 */
describe('the oura_reader role (a partner login granted it)', () => {
  let db: TestDatabase;
  let admin: pg.Client;
  let partner: pg.Client;
  const login = `oura_partner_${randomBytes(4).toString('hex')}`;

  before(async () => {
    db = await createTestDatabase('reader');
    admin = new pg.Client({ connectionString: db.url });
    await admin.connect();
    await admin.query(`insert into oura.users (id, access_token_enc, refresh_token_enc, personal_info) values ('u1', 'v1.secret-access', 'v1.secret-refresh', '{"age": 40}')`);
    await admin.query(
      `insert into oura.daily_sleep (id, user_id, day, document) values ('d1', 'u1', '2026-11-30', '{"id": "d1", "day": "2026-11-30", "score": 80}')`,
    );
    await admin.query(`insert into oura.changes (user_id, kind, op, data_type, object_id) values ('u1', 'document', 'create', 'daily_sleep', 'd1')`);
    // What an operator does: a login role (no password here: the test server trusts local connections) granted oura_reader.
    await admin.query(`create role ${login} login in role oura_reader`);
    const url = new URL(withDatabase(db.url, db.name));
    url.username = login;
    url.password = '';
    partner = new pg.Client({ connectionString: url.toString() });
    await partner.connect();
  });
  after(async () => {
    await partner?.end();
    await admin?.query(`drop role if exists ${login}`).catch(() => {});
    await admin?.end();
    await db?.drop();
  });

  const refused = async (sql: string) => {
    const err = await partner.query(sql).then(
      () => null,
      (e: { code?: string }) => e,
    );
    assert.equal(err?.code, '42501', `${sql}: permission denied`);
  };

  test('reads every data table and the users without their tokens', async () => {
    const { rows } = await partner.query(`select id, user_id, document->>'score' as score from oura.daily_sleep`);
    assert.deepEqual(rows, [{ id: 'd1', user_id: 'u1', score: '80' }]);
    const users = await partner.query(`select * from oura.connected_users`);
    assert.equal(users.rows.length, 1);
    assert.deepEqual(users.rows[0].personal_info, { age: 40 });
    for (const column of users.fields.map((f) => f.name)) assert.doesNotMatch(column, /token/, `connected_users has no ${column}`);
    const feed = await partner.query(`select kind, op, data_type, object_id from oura.changes where user_id = 'u1'`);
    assert.deepEqual(feed.rows, [{ kind: 'document', op: 'create', data_type: 'daily_sleep', object_id: 'd1' }], 'the change feed');
    for (const table of [...DOCUMENT_TYPES, 'heartrate', 'ring_battery_level']) {
      await partner.query(`select * from oura.${table} limit 1`);
    }
  });

  test('cannot read tokens, the inbox or the events, and cannot write', async () => {
    await refused(`select access_token_enc from oura.users`);
    await refused(`select refresh_token_enc from oura.users`);
    await refused(`select id from oura.users`);
    await refused(`select * from oura.webhook_inbox`);
    await refused(`select * from oura.webhook_events`);
    await refused(`select * from oura.backfill_progress`);
    await refused(`select * from oura.partner_webhook_deliveries`);
    await refused(`select * from oura.partner_webhook_cursor`);
    await refused(`delete from oura.changes`);
    await refused(`insert into oura.daily_sleep (id, user_id, day, document) values ('d2', 'u1', '2026-12-01', '{}')`);
    await refused(`update oura.daily_sleep set document = '{}'`);
    await refused(`delete from oura.daily_sleep`);
    await refused(`delete from oura.connected_users`);
  });
});
