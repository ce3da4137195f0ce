import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { eventJobId } from '../src/queues/index.js';
import { TEST_SECRETS } from './helpers/env.js';
import { startStack, type Stack } from './helpers/stack.js';

const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

describe('queue dashboard (Bull Board at /admin/queues)', () => {
  let stack: Stack;

  async function get(path: string, authorization: string | null) {
    const res = await fetch(`${stack.apiUrl}${path}`, { headers: authorization === null ? {} : { authorization } });
    return { status: res.status, type: res.headers.get('content-type') ?? '', challenge: res.headers.get('www-authenticate'), text: await res.text() };
  }

  before(async () => {
    stack = await startStack({ label: 'dashboard', inProcessWorker: false });
  });
  after(async () => {
    await stack?.close();
  });

  test('without the admin token the page, its assets and its API answer 401 with a Basic challenge', async () => {
    const page = await get('/admin/queues', `Bearer ${TEST_SECRETS.ADMIN_TOKEN}`);
    const asset = /href="(static\/[^"]+\.css)"/.exec(page.text)?.[1];
    assert.ok(asset, 'the page links its stylesheet');
    const wrong = [
      null,
      '',
      'Bearer',
      'Bearer not-the-admin-token-at-all',
      `Bearer ${TEST_SECRETS.ADMIN_TOKEN}x`,
      `Bearer ${TEST_SECRETS.ADMIN_TOKEN.slice(0, -1)}`,
      basic('admin', 'not-the-admin-token-at-all'),
      basic(TEST_SECRETS.ADMIN_TOKEN, ''),
      `Basic ${Buffer.from(TEST_SECRETS.ADMIN_TOKEN).toString('base64')}`,
      TEST_SECRETS.ADMIN_TOKEN,
    ];
    for (const path of ['/admin/queues', '/admin/queues/', '/admin/queues/queue/oura-events', '/admin/queues/api/queues', `/admin/queues/${asset}`]) {
      for (const authorization of wrong) {
        const res = await get(path, authorization);
        assert.equal(res.status, 401, `${path} with ${JSON.stringify(authorization)}`);
        assert.equal(res.challenge, 'Basic realm="oura-ingest"', 'a browser is asked for credentials');
        const body = JSON.parse(res.text);
        assert.equal(body.code, 'unauthorized');
        assert.equal(typeof body.request_id, 'string');
        assert.equal(res.text.includes('oura-events'), false, 'nothing about the queues leaks');
      }
    }
    // Nothing changes through the API without the token either.
    const pause = await fetch(`${stack.apiUrl}/admin/queues/api/queues/oura-events/pause`, { method: 'PUT' });
    assert.equal(pause.status, 401);
    assert.equal(await stack.deps.queue.isPaused(), false);
  });

  test('with the admin token (Bearer, or Basic with it as the password) the page, its assets and its API answer', async () => {
    for (const authorization of [`Bearer ${TEST_SECRETS.ADMIN_TOKEN}`, `bearer ${TEST_SECRETS.ADMIN_TOKEN}`, basic('admin', TEST_SECRETS.ADMIN_TOKEN), basic('', TEST_SECRETS.ADMIN_TOKEN)]) {
      const page = await get('/admin/queues', authorization);
      assert.equal(page.status, 200, `page with ${authorization.split(' ')[0]}`);
      assert.match(page.type, /^text\/html/);
      assert.match(page.text, /<base href="\/admin\/queues\/"/, 'assets and API calls resolve under /admin/queues/');
      assert.match(page.text, /<title>oura-ingest queues<\/title>/);

      const asset = /href="(static\/[^"]+\.css)"/.exec(page.text)![1]!;
      const css = await get(`/admin/queues/${asset}`, authorization);
      assert.equal(css.status, 200);
      assert.match(css.type, /^text\/css/);

      const api = await get('/admin/queues/api/queues', authorization);
      assert.equal(api.status, 200);
      const names = (JSON.parse(api.text) as { queues: Array<{ name: string }> }).queues.map((q) => q.name).sort();
      assert.deepEqual(names, ['oura-backfill', 'oura-events', 'oura-intake', 'oura-maintenance', 'oura-reconcile', 'oura-timeseries']);
    }
  });

  test('a waiting fetch job shows in the dashboard with its counts and its data (an event id, nothing else)', async () => {
    // No worker runs in this file, so the job stays waiting. (The webhook path that queues
    // such jobs has its own tests; this one is about what the dashboard shows of them.)
    await stack.deps.queue.add('fetch', { eventId: 4242 }, { jobId: eventJobId(4242) });
    const api = await get('/admin/queues/api/queues?activeQueue=oura-events&status=waiting&page=1', `Bearer ${TEST_SECRETS.ADMIN_TOKEN}`);
    assert.equal(api.status, 200);
    type Listing = { queues: Array<{ name: string; counts: Record<string, number>; jobs: Array<{ id: string; data: unknown }> }> };
    const events = (JSON.parse(api.text) as Listing).queues.find((q) => q.name === 'oura-events')!;
    assert.equal(events.counts.waiting, 1);
    assert.deepEqual(
      events.jobs.map((j) => [j.id, j.data]),
      [[eventJobId(4242), { eventId: 4242 }]],
    );
    const job = await get(`/admin/queues/api/queues/oura-events/${eventJobId(4242)}`, null);
    assert.equal(job.status, 401, 'a job is not readable without the token');
  });

  test('the page and its stylesheets make the browser call no other host', async () => {
    const auth = `Bearer ${TEST_SECRETS.ADMIN_TOKEN}`;
    const page = await get('/admin/queues', auth);
    assert.equal(page.status, 200);
    const links = [...page.text.matchAll(/\b(?:href|src)="([^"]*)"/g)].map((m) => m[1]!);
    assert.ok(links.some((l) => l.endsWith('.css')) && links.some((l) => l.endsWith('.js')), 'the page links its assets');
    for (const link of links.filter((l) => l !== '/admin/queues/')) {
      assert.doesNotMatch(link, /^(?:[a-z]+:)?\/\//i, `${link} is on this server`);
      const asset = await get(`/admin/queues/${link.replace(/^\/admin\/queues\//, '')}`, auth);
      assert.equal(asset.status, 200, link);
      if (link.endsWith('.css')) assert.doesNotMatch(asset.text, /(?:@import|url\()\s*["']?(?:https?:)?\/\//i, `${link} loads nothing from elsewhere`);
    }
  });
});

describe('queue dashboard and admin API with ADMIN_READONLY=true', () => {
  let stack: Stack;
  const auth = { authorization: `Bearer ${TEST_SECRETS.ADMIN_TOKEN}` };
  before(async () => {
    stack = await startStack({ label: 'dashboard-ro', inProcessWorker: false, env: { ADMIN_READONLY: 'true' } });
  });
  after(async () => {
    await stack?.close();
  });

  test('they show everything and change nothing', async () => {
    await stack.deps.queue.add('fetch', { eventId: 7 }, { jobId: eventJobId(7) });
    const api = await fetch(`${stack.apiUrl}/admin/queues/api/queues?activeQueue=oura-events&status=waiting&page=1`, { headers: auth });
    assert.equal(api.status, 200);
    const queues = ((await api.json()) as { queues: Array<{ name: string; readOnlyMode: boolean; jobs: unknown[] }> }).queues;
    assert.ok(queues.every((q) => q.readOnlyMode), 'the UI is told: no buttons that change');
    assert.equal(queues.find((q) => q.name === 'oura-events')!.jobs.length, 1);

    const changes: Array<[string, string, unknown?]> = [
      ['PUT', '/admin/queues/api/queues/oura-events/pause'],
      ['PUT', '/admin/queues/api/queues/pause'],
      ['PUT', '/admin/queues/api/queues/oura-events/clean/waiting'],
      ['PUT', '/admin/queues/api/queues/oura-events/empty'],
      ['PUT', '/admin/queues/api/queues/oura-events/obliterate'],
      ['POST', '/admin/queues/api/queues/oura-events/add', { name: 'fetch', data: { eventId: 8 } }],
      ['PUT', `/admin/queues/api/queues/oura-events/${eventJobId(7)}/promote`],
      ['POST', '/admin/subscriptions/sync', {}],
      ['POST', '/admin/failed/replay', {}],
      ['DELETE', '/admin/users/00000000-0000-0000-0000-000000000000'],
    ];
    for (const [method, path, body] of changes) {
      const res = await fetch(`${stack.apiUrl}${path}`, {
        method,
        headers: body === undefined ? auth : { ...auth, 'content-type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      assert.equal(res.status, 403, `${method} ${path}`);
      assert.equal(((await res.json()) as { code: string }).code, 'admin_readonly', `${method} ${path}`);
    }
    assert.equal(await stack.deps.queue.isPaused(), false);
    assert.deepEqual((await stack.deps.queue.getWaiting()).map((j) => j.id), [eventJobId(7)], 'the job is still there, alone');

    const users = await fetch(`${stack.apiUrl}/admin/users`, { headers: auth });
    assert.equal(users.status, 200, 'reading still works');
    const anonymous = await fetch(`${stack.apiUrl}/admin/queues/api/queues/oura-events/pause`, { method: 'PUT' });
    assert.equal(anonymous.status, 401, 'the token is still asked for first');
  });
});
