import type { Deps } from '../deps.js';
import { callbackUrl, type SubscriptionRef } from '../oura/subscriptions.js';

export { callbackUrl, syncAppSubscriptions } from '../oura/subscriptions.js';

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
