import type { Deps } from '../deps.js';
import { syncSubscriptions, type SubscriptionRef, type SyncResult } from '../oura/subscriptions.js';

/** Where Oura calls us. */
export const callbackUrl = (config: Deps['config']): string => `${config.PUBLIC_BASE_URL}/webhooks/oura`;

/** The application's subscriptions at Oura, by data type and event type. */
export async function listSubscriptions(deps: Pick<Deps, 'subscriptions' | 'config'>): Promise<Array<SubscriptionRef & { ours: boolean }>> {
  const ours = callbackUrl(deps.config);
  const subs = await deps.subscriptions.list();
  return subs
    .map((s) => ({
      id: s.id,
      event_type: s.event_type,
      data_type: s.data_type,
      callback_url: s.callback_url,
      expiration_time: s.expiration_time,
      ours: s.callback_url === ours,
    }))
    .sort((a, b) => a.data_type.localeCompare(b.data_type) || a.event_type.localeCompare(b.event_type));
}

/** One subscription per ingested (event_type, data_type) calling PUBLIC_BASE_URL/webhooks/oura; see syncSubscriptions. */
export function syncAppSubscriptions(
  deps: Pick<Deps, 'subscriptions' | 'config'>,
  input: { onProgress?: (done: number, total: number) => void } = {},
): Promise<SyncResult> {
  return syncSubscriptions(deps.subscriptions, {
    callbackUrl: callbackUrl(deps.config),
    verificationToken: deps.config.OURA_WEBHOOK_VERIFICATION_TOKEN,
    onProgress: input.onProgress,
  });
}
