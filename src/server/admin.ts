import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { listFailed, replayFailed } from '../admin/failed.js';
import { listDeadWebhooks, replayDeadWebhooks } from '../admin/partner-webhooks.js';
import { listSubscriptions, syncAppSubscriptions } from '../admin/subscriptions.js';
import { backfillUser, defaultBackfillDays, disconnectUser, listUsers } from '../admin/users.js';
import { budgetReport } from '../budget/report.js';
import { isAdmin, refusedAsReadonly } from './admin-auth.js';
import type { Deps } from '../deps.js';
import { AppError, parseOr, viaOura } from '../errors/catalog.js';

export interface AdminRoutesOptions {
  adminToken: string;
  /** Only the routes that read answer; the others 403 (ADMIN_READONLY). */
  readonly?: boolean;
  deps: Deps;
}

const ReplayBody = z.object({ ids: z.array(z.string().min(1).max(200)).max(10_000).optional() }).strict();
const FailedQuery = z.object({
  limit: z.coerce.number().int().min(1).max(1000).optional(),
  offset: z.coerce.number().int().min(0).optional(),
});

const DeadWebhooksQuery = z.object({
  limit: z.coerce.number().int().min(1).max(1000).optional(),
  user_id: z.string().min(1).max(200).optional(),
});
/** `{"seqs": [...]}` or `{"all": true}`. */
const WebhookReplayBody = z
  .object({ seqs: z.array(z.number().int().min(1)).min(1).max(10_000).optional(), all: z.literal(true).optional() })
  .strict()
  .refine((b) => (b.seqs === undefined) !== (b.all === undefined), 'expected {"seqs": [seq, …]} or {"all": true}')
  .transform((b): { seqs: number[] } | { all: true } => (b.all ? { all: true } : { seqs: b.seqs! }));

/**
 * The admin API under /admin. Every route needs `Authorization: Bearer
 * <ADMIN_TOKEN>`. Routes stay thin: the operations live in src/admin/ and are
 * shared with the CLI.
 */
/** `{"take_over": true}`: also repoint subscriptions that call back another URL (see syncSubscriptions). */
const SyncBody = z.object({ take_over: z.boolean().optional() }).strict();

/** `{"days": N}`: how much history to load (default BACKFILL_DAYS). */
const BackfillBody = z.object({ days: z.number().int().min(1).max(3650).optional() }).strict();

export async function adminRoutes(app: FastifyInstance, opts: AdminRoutesOptions) {
  const { deps } = opts;

  app.addHook('onRequest', async (req) => {
    if (!isAdmin(req.headers.authorization, opts.adminToken)) {
      throw new AppError('unauthorized', 'admin routes need Authorization: Bearer <ADMIN_TOKEN>');
    }
    if (refusedAsReadonly(opts.readonly, req.method)) {
      throw new AppError('admin_readonly', 'the admin API is read-only here (ADMIN_READONLY=true): use the CLI where changes are allowed');
    }
  });

  app.get('/users', async () => ({ users: await listUsers(deps) }));

  app.get('/budget', async () => budgetReport(deps));

  app.post('/users/:userId/backfill', async (req, reply) => {
    const { userId } = req.params as { userId: string };
    const body = parseOr(BackfillBody, req.body ?? {}, 'invalid_body');
    const started = await backfillUser(deps, { userId, days: body.days ?? defaultBackfillDays(deps) });
    return reply.code(202).send({ ...started, status: 'started' });
  });

  app.delete('/users/:userId', async (req) => {
    const { userId } = req.params as { userId: string };
    return disconnectUser(deps, { userId });
  });

  app.get('/failed', async (req) => {
    return listFailed(deps, parseOr(FailedQuery, req.query, 'bad_request', 'query'));
  });

  app.post('/failed/replay', async (req) => {
    return replayFailed(deps, { ids: parseOr(ReplayBody, req.body ?? {}, 'invalid_body').ids });
  });

  app.get('/partner-webhooks/dead', async (req) => {
    const q = parseOr(DeadWebhooksQuery, req.query, 'bad_request', 'query');
    return listDeadWebhooks(deps, { limit: q.limit, userId: q.user_id });
  });

  app.post('/partner-webhooks/replay', async (req) => {
    return replayDeadWebhooks(deps, parseOr(WebhookReplayBody, req.body ?? {}, 'invalid_body'));
  });

  app.get('/subscriptions', async () => ({
    subscriptions: await viaOura('list subscriptions', () => listSubscriptions(deps)),
  }));

  app.post('/subscriptions/sync', async (req) => {
    const body = parseOr(SyncBody, req.body ?? {}, 'invalid_body');
    return viaOura('list subscriptions', () => syncAppSubscriptions(deps, { takeOver: body.take_over === true }));
  });
}
