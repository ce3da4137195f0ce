import type { Deps } from '../deps.js';

/**
 * `/readyz`'s answer, the api's and a worker's: 200 `ready` when Postgres,
 * Redis and the migrations all answer, else 503 `not_ready`, with each check.
 */
export async function readinessReport(readiness: Deps['readiness']) {
  const checks = await readiness();
  const ok = Object.values(checks).every(Boolean);
  return { statusCode: ok ? 200 : 503, body: { status: ok ? 'ready' : 'not_ready', checks } };
}
