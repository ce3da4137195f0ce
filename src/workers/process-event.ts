import type { Logger } from 'pino';
import type { DocumentsRepo } from '../db/documents.js';
import type { EventsRepo } from '../db/events.js';
import type { UsersRepo } from '../db/users.js';
import type { OuraClient } from '../oura/client.js';
import { isDocumentType } from '../oura/registry.js';
import type { TokenService } from '../oura/tokens.js';
import { UserUnavailableError } from '../oura/tokens.js';
import type { EventJob } from './queues.js';

export interface ProcessEventDeps {
  events: EventsRepo;
  documents: DocumentsRepo;
  users: UsersRepo;
  oura: OuraClient;
  tokens: TokenService;
  log: Logger;
}

export type EventOutcome = 'stored' | 'deleted' | 'gone' | 'already_finished' | 'user_unavailable' | 'unsupported_data_type';

/**
 * One webhook event: create/update → fetch the document and upsert it;
 * delete → remove it; a 404 on fetch means the document is gone → remove it,
 * so a late update never resurrects a deleted document.
 */
export async function processEvent(deps: ProcessEventDeps, input: EventJob): Promise<EventOutcome> {
  const event = await deps.events.get(input.eventId);
  if (!event) return 'already_finished';
  if (event.status !== 'queued') return 'already_finished';
  const log = deps.log.child({ eventId: event.id, userId: event.user_id, dataType: event.data_type });
  const type = event.data_type;
  if (!isDocumentType(type)) {
    await deps.events.finish([event.id], 'ignored', 'unsupported_data_type');
    return 'unsupported_data_type';
  }

  if (event.event_type === 'delete') {
    await deps.documents.remove(type, event.user_id, event.object_id);
    await deps.events.finish([event.id], 'done', 'deleted');
    log.info({ objectId: event.object_id }, 'document deleted');
    return 'deleted';
  }

  let doc: Record<string, unknown> | null;
  try {
    doc = await deps.tokens.withToken(event.user_id, (token) => deps.oura.getDocument(token, type, event.object_id));
  } catch (err) {
    if (err instanceof UserUnavailableError) {
      await deps.events.finish([event.id], 'ignored', `user_${err.status}`);
      log.info({ status: err.status }, 'event skipped: user not active');
      return 'user_unavailable';
    }
    throw err;
  }
  await deps.users.touchFetch(event.user_id);
  if (doc === null) {
    await deps.documents.remove(type, event.user_id, event.object_id);
    await deps.events.finish([event.id], 'done', 'gone');
    log.info({ objectId: event.object_id }, 'document gone at Oura; removed');
    return 'gone';
  }
  await deps.documents.upsert(type, event.user_id, [doc]);
  await deps.events.finish([event.id], 'done', 'stored');
  log.info({ objectId: event.object_id }, 'document stored');
  return 'stored';
}
