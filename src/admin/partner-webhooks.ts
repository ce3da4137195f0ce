import type { Deps } from '../deps.js';
import type { DeadMessage } from '../db/partner-webhooks.js';
import { AppError } from '../errors/catalog.js';

/** Outbound webhook dead letters, oldest first: ids, type, data (never the document), attempts and the last failure. */
export async function listDeadWebhooks(
  deps: Pick<Deps, 'partnerWebhooks'>,
  input: { limit?: number; userId?: string } = {},
): Promise<{ total: number; dead: DeadMessage[] }> {
  const limit = Math.min(Math.max(Math.trunc(input.limit ?? 100), 1), 1000);
  return deps.partnerWebhooks.listDead({ limit, ...(input.userId ? { userId: input.userId } : {}) });
}

/**
 * Sends dead letters again: the given ones (by seq) or all of them, back to
 * pending with fresh attempts, due now. They keep their webhook-id, so a
 * receiver that did get one deduplicates it. A message goes after the
 * user's older pending ones, as any other. Seqs that are not dead letters
 * are refused before anything changes.
 */
export async function replayDeadWebhooks(
  deps: Pick<Deps, 'partnerWebhooks' | 'log'>,
  input: { seqs: number[] } | { all: true },
): Promise<{ replayed: number }> {
  let replayed: number;
  if ('all' in input) replayed = await deps.partnerWebhooks.replay('all');
  else {
    const seqs = [...new Set(input.seqs)];
    const missing = await deps.partnerWebhooks.notDead(seqs);
    if (missing.length > 0) {
      throw new AppError('not_found', `no dead outbound webhook ${missing.slice(0, 5).join(', ')}${missing.length > 5 ? ` (and ${missing.length - 5} more)` : ''}`);
    }
    replayed = await deps.partnerWebhooks.replay(seqs);
  }
  deps.log.child({ module: 'admin' }).info({ replayed }, 'outbound webhook dead letters replayed');
  return { replayed };
}
