import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import { isDeepStrictEqual } from 'node:util';
import { sql } from 'drizzle-orm';
import { webhookSignature } from '../src/crypto.js';
import { DOCUMENT_TYPES, documentTypes, type DocumentType } from '../src/oura/registry.js';
import { eventually, startStack, type Stack } from './helpers/stack.js';

/** Reads the row of a document straight from `oura.<type>` as a partner would. */
async function row(stack: Stack, type: DocumentType, id: string): Promise<Record<string, unknown> | null> {
  const r = await stack.deps.db.execute<Record<string, unknown>>(
    sql`select *, to_jsonb(t) as _json from ${sql.identifier('oura')}.${sql.identifier(type)} t where id = ${id}`,
  );
  return r.rows[0] ?? null;
}

/** The column value a partner reads equals the document's field. */
function assertColumnMatches(type: DocumentType, field: string, column: unknown, value: unknown) {
  const shape = documentTypes[type].shape.properties[field]!;
  const where = `${type}.${field}`;
  if (value === null || value === undefined) return assert.equal(column, null, where);
  switch (shape.kind) {
    case 'object':
    case 'array':
    case 'any':
      return assert.deepEqual(column, value, where);
    case 'integer':
    case 'number':
      return assert.equal(Number(column), value, where);
    case 'string':
      if (shape.format === 'date') return assert.equal(String(column), value, where);
      if (shape.format === 'datetime') return assert.equal(new Date(column as string).getTime(), Date.parse(value as string), where);
      if (shape.format === 'localdatetime') {
        return assert.equal(String(column).replace(' ', 'T').slice(0, 19), String(value).slice(0, 19), where);
      }
      return assert.equal(column, value, where);
    default:
      return assert.equal(column, value, where);
  }
}

describe('end to end: simulator → webhook → worker → Postgres', () => {
  let stack: Stack;
  let userId: string;

  before(async () => {
    // A 404 right after an update is re-checked once before it counts as gone; at once here.
    stack = await startStack({ label: 'e2e', env: { RECHECK_DELAY_S: '0' } });
    await stack.subscribeAll(DOCUMENT_TYPES);
    userId = await stack.connectUser();
  });
  after(async () => {
    await stack?.close();
  });

  test('the connected user is stored active with encrypted tokens', async () => {
    const user = await stack.deps.users.get(userId);
    assert.equal(user?.status, 'active');
    assert.ok(user?.access_token_enc?.startsWith('v1.'));
    assert.ok(user?.refresh_token_enc?.startsWith('v1.'));
  });

  test('create, update, delete and a late update for each of the 16 types', async () => {
    for (const type of DOCUMENT_TYPES) {
      // create → the document lands with its fields in columns and whole in `document`
      const created = await stack.simJson('POST', `/_sim/users/${userId}/documents/${type}`, { notify: true });
      const stored = await eventually(`${type} created`, () => row(stack, type, created.id));
      assert.deepEqual(stored.document, created, `${type}: document as received`);
      assert.equal(stored.user_id, userId);
      for (const field of documentTypes[type].fields) {
        if (field === 'id') continue;
        assert.ok(field in stored, `${type}: column ${field} exists`);
        assertColumnMatches(type, field, stored[field], created[field]);
      }

      // update → the row follows
      const updated = await stack.simJson('PATCH', `/_sim/users/${userId}/documents/${type}/${created.id}`, { notify: true });
      assert.notDeepEqual(updated, created, `${type}: the simulator changed something`);
      const restored = await eventually(`${type} updated`, async () => {
        const r = await row(stack, type, created.id);
        return r && isDeepStrictEqual(r.document, updated) ? r : null;
      });
      for (const field of documentTypes[type].fields) if (field !== 'id') assertColumnMatches(type, field, restored[field], updated[field]);

      // delete → the row goes
      await stack.simJson('DELETE', `/_sim/users/${userId}/documents/${type}/${created.id}?notify=true`);
      await eventually(`${type} deleted`, async () => (await row(stack, type, created.id)) === null);

      // a late update for the deleted document: fetched, 404, re-checked, stays gone
      const late = await stack.simJson('POST', '/_sim/events', {
        event_type: 'update',
        data_type: type,
        object_id: created.id,
        user_id: userId,
        event_time: new Date().toISOString(),
      });
      assert.ok(late.deliveries.every((d: { status: number }) => d.status === 200), JSON.stringify(late));
      await eventually(`${type} late update processed`, async () => {
        const r = await stack.deps.pool.query(
          `select outcome from oura.webhook_events where object_id = $1 and event_type = 'update' and status = 'done' and outcome = 'gone_after_recheck'`,
          [created.id],
        );
        return r.rowCount === 1;
      });
      assert.equal(await row(stack, type, created.id), null, `${type}: late update did not resurrect it`);
    }
  });

  test('every event ends recorded with its outcome', async () => {
    const { rows } = await stack.deps.pool.query<{ status: string; n: string }>(
      'select status, count(*) as n from oura.webhook_events group by status',
    );
    const by = Object.fromEntries(rows.map((r) => [r.status, Number(r.n)]));
    assert.equal(by.queued ?? 0, 0, 'nothing left pending');
    assert.equal(by.failed ?? 0, 0, 'nothing failed');
    assert.equal(by.done, DOCUMENT_TYPES.length * 4);
  });

  test("the connected user's last webhook is recorded; an event for a user we do not know is ignored without a request to Oura", async () => {
    await eventually('last_webhook_at recorded', async () => (await stack.deps.users.get(userId))?.last_webhook_at);
    const requestsBefore = stack.sim.state.requests.length;
    const body = JSON.stringify({
      event_type: 'create',
      data_type: 'daily_sleep',
      object_id: 'obj-of-nobody',
      event_time: new Date().toISOString(),
      user_id: 'user-we-never-connected',
    });
    const ts = String(Math.floor(Date.now() / 1000));
    const res = await fetch(`${stack.apiUrl}/webhooks/oura`, {
      method: 'POST',
      body,
      headers: { 'content-type': 'application/json', 'x-oura-timestamp': ts, 'x-oura-signature': webhookSignature(stack.env.OURA_CLIENT_SECRET!, ts, body) },
    });
    assert.equal(res.status, 200);
    // A new event keeps its delivery's id.
    const { delivery_id: id } = (await res.json()) as { delivery_id: number };
    const event = await eventually('the event finished', async () => {
      const e = await stack.deps.events.get(id);
      return e?.status === 'queued' ? null : e;
    });
    assert.equal(event.status, 'ignored');
    assert.equal(event.outcome, 'user_unknown');
    assert.equal(stack.sim.state.requests.slice(requestsBefore).filter((r) => r.path.startsWith('/v2/')).length, 0, 'no request to Oura');
  });

  test('a pg_dump of the database holds neither token in plaintext', async (t) => {
    let dump: string;
    try {
      dump = execFileSync('pg_dump', ['--data-only', '--schema=oura', stack.db.url], { encoding: 'utf8', maxBuffer: 64 << 20 });
    } catch (err) {
      t.skip(`pg_dump not available: ${(err as Error).message.split('\n')[0]}`);
      return;
    }
    const tokens = stack.sim.state.tokensOf(userId);
    assert.ok(tokens.access.length > 0 && tokens.refresh.length > 0, 'the simulator issued tokens');
    assert.ok(dump.includes(userId), 'the dump holds the user');
    for (const tok of [...tokens.access, ...tokens.refresh]) assert.equal(dump.includes(tok), false, 'token in plaintext');
  });
});
