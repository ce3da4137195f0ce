import { createServer, type Server, type ServerResponse } from 'node:http';
import type { PortRange } from '../config.js';
import type { Deps } from '../deps.js';
import { pathOnly } from '../logger.js';
import { readinessReport } from './readiness.js';

/**
 * What a worker-only process serves on METRICS_PORT, having no API:
 * `/metrics` (Prometheus text), `/healthz` (the process is up) and `/readyz`
 * (Postgres, Redis and migrations answer; 503 otherwise), in the api's
 * shapes. Compose's worker healthcheck reads `/readyz`. Plain node:http:
 * three fixed routes, no body, nothing to parse.
 */
export function createWorkerStatusServer(deps: Pick<Deps, 'metrics' | 'readiness'>): Server {
  const json = (res: ServerResponse, status: number, body: unknown) =>
    res.writeHead(status, { 'content-type': 'application/json; charset=utf-8' }).end(JSON.stringify(body));
  return createServer((req, res) => {
    const url = pathOnly(req.url ?? '');
    if (req.method !== 'GET' && req.method !== 'HEAD') return json(res, 405, { code: 'method_not_allowed', message: `${req.method} is not served here` });
    if (url === '/metrics') {
      deps.metrics.registry.metrics().then(
        (body) => res.writeHead(200, { 'content-type': deps.metrics.registry.contentType }).end(body),
        () => json(res, 500, { code: 'internal', message: 'internal error' }),
      );
    } else if (url === '/healthz') {
      json(res, 200, { status: 'ok' });
    } else if (url === '/readyz') {
      readinessReport(deps.readiness).then(
        ({ statusCode, body }) => json(res, statusCode, body),
        () => json(res, 503, { status: 'not_ready', checks: {} }),
      );
    } else {
      json(res, 404, { code: 'not_found', message: `no route ${req.method} ${url}` });
    }
  });
}

/**
 * Listens on the first port of `range` that no other process holds (several
 * workers on one host, each with the same METRICS_PORT range); resolves to
 * that port. Rejects when every port of the range is taken, naming it.
 */
export async function listenOnFirstFree(server: Server, range: PortRange, host: string): Promise<number> {
  for (let port = range.first; port <= range.last; port++) {
    const err = await new Promise<NodeJS.ErrnoException | null>((resolve) => {
      const onError = (e: NodeJS.ErrnoException) => {
        server.off('listening', onListening);
        resolve(e);
      };
      const onListening = () => {
        server.off('error', onError);
        resolve(null);
      };
      server.once('error', onError).once('listening', onListening).listen(port, host);
    });
    if (!err) return port;
    if (err.code !== 'EADDRINUSE') throw err;
  }
  throw new Error(range.first === range.last ? `port ${range.first} is in use` : `every port from ${range.first} to ${range.last} is in use`);
}
