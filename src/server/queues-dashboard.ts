import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { FastifyAdapter } from '@bull-board/fastify';
import type { Queue } from 'bullmq';
import type { FastifyInstance } from 'fastify';
import { isAdmin, refusedAsReadonly } from './admin-auth.js';
import { ERROR_STATUS } from '../errors/catalog.js';

export const QUEUES_DASHBOARD_PATH = '/admin/queues';

/** What Bull Board's error handler returns: a status of its own list and a body. */
type BoardErrorAnswer = ReturnType<Parameters<FastifyAdapter['setErrorHandler']>[0]>;

export interface QueuesDashboardOptions {
  adminToken: string;
  queues: Queue[];
  /** Look only: no pause, retry, promote, clean, remove or obliterate (Bull Board answers 405). */
  readonly?: boolean;
}

/**
 * Bull Board's page asks a font host for its fonts; an admin page must work
 * on a network with no internet, and say nothing to third parties, so the
 * link goes and the page uses the fonts the browser has.
 */
const OUTSIDE_FONTS = /<link\b[^>]*\bhref="https:\/\/fonts\.(?:googleapis|gstatic)\.com[^"]*"[^>]*>\s*/g;

/**
 * Bull Board (UI, its static assets and its JSON API) at /admin/queues, for
 * the given queues, behind the admin token. Register it at the root: it sets
 * its own prefix. Nothing it serves makes the browser call another host.
 */
export async function queuesDashboard(app: FastifyInstance, opts: QueuesDashboardOptions) {
  const board = new FastifyAdapter();
  board.setBasePath(QUEUES_DASHBOARD_PATH);
  createBullBoard({
    queues: opts.queues.map((q) => new BullMQAdapter(q, { readOnlyMode: opts.readonly === true })),
    serverAdapter: board,
    options: { uiConfig: { boardTitle: 'oura-ingest queues' } },
  });
  // Bull Board answers its own errors (it sets an error handler in its scope), in
  // the shape its UI reads; this one keeps 5xx text to ourselves, as the app's handler does.
  board.setErrorHandler((err: Error & { statusCode?: number }) => {
    const status = err.statusCode && err.statusCode < 500 ? err.statusCode : 500;
    const body = { error: { key: 'ERRORS.INTERNAL_SERVER_ERROR' }, message: status < 500 ? err.message : 'internal error' };
    return { status, body } as BoardErrorAnswer;
  });

  await app.register(async (scope) => {
    // The check answers itself rather than throwing: an error thrown here would
    // reach Bull Board's error handler (its routes live in a child scope), not the app's.
    scope.addHook('onRequest', async (req, reply) => {
      if (isAdmin(req.headers.authorization, opts.adminToken, { basic: true })) {
        // Bull Board refuses what its read-only mode knows of; this refuses every change, whatever a version adds.
        if (!refusedAsReadonly(opts.readonly, req.method)) return;
        return reply.code(ERROR_STATUS.admin_readonly).send({
          code: 'admin_readonly',
          message: 'the queue dashboard is read-only here (ADMIN_READONLY=true)',
          request_id: req.id,
        });
      }
      return reply
        .code(ERROR_STATUS.unauthorized)
        .header('www-authenticate', 'Basic realm="oura-ingest"')
        .send({
          code: 'unauthorized',
          message: 'the queue dashboard needs the admin token: Authorization: Bearer <ADMIN_TOKEN>, or Basic auth with it as the password',
          request_id: req.id,
        });
    });
    scope.addHook('onSend', async (_req, reply, payload) => {
      if (typeof payload !== 'string' || !String(reply.getHeader('content-type') ?? '').startsWith('text/html')) return payload;
      return payload.replace(OUTSIDE_FONTS, '');
    });
    scope.addHook('onError', async (req, _reply, err) => {
      const status = (err as { statusCode?: number }).statusCode ?? 500;
      if (status >= 500) req.log.error({ err }, 'queue dashboard request failed');
    });
    await scope.register(board.registerPlugin(), { prefix: QUEUES_DASHBOARD_PATH });
  });
}
