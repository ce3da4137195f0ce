import { safeEqual } from '../crypto.js';

/**
 * The admin token a request presents: `Authorization: Bearer <token>`, or
 * (with `basic`) `Basic base64(<any user>:<token>)` so that a browser can log
 * in through its own prompt. Null when none is there.
 */
export function presentedAdminToken(header: string | undefined, opts: { basic?: boolean } = {}): string | null {
  const bearer = /^Bearer\s+(\S+)\s*$/i.exec(header ?? '');
  if (bearer) return bearer[1]!;
  if (!opts.basic) return null;
  const basic = /^Basic\s+([A-Za-z0-9+/]+={0,2})\s*$/i.exec(header ?? '');
  if (!basic) return null;
  const decoded = Buffer.from(basic[1]!, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  return colon === -1 ? null : decoded.slice(colon + 1);
}

/** The request carries the admin token (compared in constant time). */
export function isAdmin(header: string | undefined, adminToken: string, opts: { basic?: boolean } = {}): boolean {
  const token = presentedAdminToken(header, opts);
  return token !== null && safeEqual(token, adminToken);
}

/** With ADMIN_READONLY, the admin surfaces answer only the methods that read. */
export function refusedAsReadonly(readonly: boolean | undefined, method: string): boolean {
  return readonly === true && method !== 'GET' && method !== 'HEAD';
}
