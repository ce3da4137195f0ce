import { OURA_SCOPES } from './registry.js';

/**
 * Where a user consents: Oura's authorize endpoint with the authorization
 * code flow's parameters, asking for every scope the API defines.
 */
export function authorizeUrl(opts: { authorizeEndpoint: string; clientId: string; redirectUri: string; state: string }): string {
  const url = new URL(opts.authorizeEndpoint);
  url.searchParams.set('response_type', 'code');
  url.searchParams.set('client_id', opts.clientId);
  url.searchParams.set('redirect_uri', opts.redirectUri);
  url.searchParams.set('scope', OURA_SCOPES.join(' '));
  url.searchParams.set('state', opts.state);
  return url.toString();
}
