import type { Server } from 'node:http';
import { loadConfig, orExit } from './config.js';
import { createDeps } from './deps.js';
import { createWorkerStatusServer, listenOnFirstFree } from './server/worker-status.js';
import { startWorkers } from './workers/index.js';

const MODES = ['api', 'worker', 'all'] as const;
type Mode = (typeof MODES)[number];

const mode = (process.argv[2] ?? 'all') as Mode;
if (!MODES.includes(mode)) {
  process.stderr.write(`usage: main <api|worker|all> (got "${process.argv[2]}")\n`);
  process.exit(2);
}
const config = orExit(() => loadConfig());
const deps = createDeps(config);
const log = deps.log.child({ module: 'main', mode });
/** Longest a shutdown may take before the process exits anyway. */
const SHUTDOWN_BOUND_MS = 25_000;

// Imported only where it runs: a worker process starts without the HTTP app's modules (fastify, the dashboard).
const app = mode === 'worker' ? null : await (await import('./server/app.js')).buildApp(deps);
const workers = mode === 'api' ? null : startWorkers(deps);
if (app) {
  try {
    await app.listen({ port: config.PORT, host: config.HOST });
  } catch (err) {
    log.fatal({ err }, 'could not listen');
    process.exit(1);
  }
}
// A worker-only process has no API: it serves its metrics and health for
// Prometheus and healthchecks, on the first port of METRICS_PORT free. Without
// one it still works, unobserved: the error says so.
let metricsServer: Server | null = null;
let metricsPort: number | undefined;
if (mode === 'worker' && config.METRICS_PORT) {
  const server = createWorkerStatusServer(deps);
  try {
    metricsPort = await listenOnFirstFree(server, config.METRICS_PORT, config.HOST);
    metricsServer = server;
  } catch (err) {
    log.error({ err, metricsPorts: `${config.METRICS_PORT.first}-${config.METRICS_PORT.last}` }, 'metrics server could not listen: this worker serves no /metrics nor /readyz');
  }
}
log.info({ port: app ? config.PORT : undefined, metricsPort }, 'oura-ingest started');

let stopping = false;
async function shutdown(signal: string) {
  if (stopping) return;
  stopping = true;
  log.info({ signal }, 'shutting down: no new work, finishing what is in flight');
  const force = setTimeout(() => {
    log.error('shutdown bound exceeded; exiting');
    process.exit(1);
  }, SHUTDOWN_BOUND_MS);
  force.unref();
  metricsServer?.close();
  await Promise.allSettled([app?.close(), workers?.close()]);
  await deps.close();
  log.info('stopped');
  clearTimeout(force);
  process.exit(0);
}
process.on('SIGTERM', () => void shutdown('SIGTERM'));
process.on('SIGINT', () => void shutdown('SIGINT'));
