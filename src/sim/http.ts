import type { FastifyRequest } from 'fastify';
import type { z } from 'zod';
import type { Tier } from './ratelimit.js';

/** One entry of the spec's HTTPValidationError (FastAPI's format). */
export interface ValidationIssue {
  loc: Array<string | number>;
  msg: string;
  type: string;
}

export const validationError = (issues: ValidationIssue[]): { detail: ValidationIssue[] } => ({ detail: issues });

/** A zod error as HTTPValidationError issues, located under `where` (`body`, `query`). */
export function zodIssues(where: string, err: z.ZodError): ValidationIssue[] {
  return err.issues.map((i) => ({
    loc: [where, ...i.path.map((p) => (typeof p === 'number' ? p : String(p)))],
    msg: i.message,
    type: i.code,
  }));
}

export function bearerToken(header: string | undefined): string | undefined {
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header ?? '');
  return m?.[1];
}

/** Splits `req.url` into path and raw query string. */
export function splitUrl(url: string): { path: string; query: string } {
  const i = url.indexOf('?');
  return i < 0 ? { path: url, query: '' } : { path: url.slice(0, i), query: url.slice(i + 1) };
}

export interface RequestMeta {
  userId: string | null;
  tier: Tier | null;
  /** A slow-answer fault: hold the computed answer this long. */
  delayMs?: number;
}

/** What the request log records about a request beyond method, path and status. */
export function createRequestMeta() {
  const metas = new WeakMap<FastifyRequest, RequestMeta>();
  return (req: FastifyRequest): RequestMeta => {
    let m = metas.get(req);
    if (!m) {
      m = { userId: null, tier: null };
      metas.set(req, m);
    }
    return m;
  };
}

export type MetaOf = ReturnType<typeof createRequestMeta>;

export const isControlPath = (url: string): boolean => url === '/_sim' || url.startsWith('/_sim/') || url.startsWith('/_sim?');
