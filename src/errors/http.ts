import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { AppError, ERROR_STATUS, type ErrorCode } from './catalog.js';

/**
 * The API's one error handler: every failure becomes `{code, message,
 * request_id}` with the catalog's status. Errors of our own (AppError) say
 * what they say; Fastify's client errors (body too large, bad content type,
 * the HTTP rate limit) get their catalog code; anything else is a 500 whose
 * text stays in the log.
 */
export function handleError(err: FastifyError | Error, req: FastifyRequest, reply: FastifyReply): void {
  const { status, code, message } = describe(err);
  if (status === 500) req.log.error({ err }, 'unhandled error');
  if (status >= 500) req.log.warn({ code }, 'request failed');
  void reply.code(status).send({ code, message, request_id: req.id });
}

function describe(err: FastifyError | Error): { status: number; code: ErrorCode; message: string } {
  if (err instanceof AppError) return { status: err.status, code: err.code, message: err.message };
  const fastify = err as Partial<FastifyError>;
  if (fastify.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
    return { status: ERROR_STATUS.payload_too_large, code: 'payload_too_large', message: 'request body is larger than allowed' };
  }
  const statusCode = fastify.statusCode ?? 500;
  if (statusCode === 429) return { status: 429, code: 'rate_limited', message: 'too many requests; slow down' };
  if (statusCode < 500) return { status: statusCode, code: statusCode === 415 ? 'unsupported_media_type' : 'bad_request', message: err.message };
  return { status: 500, code: 'internal', message: 'internal error' };
}

/** The 404 of a route nobody serves, in the same shape. */
export function notFound(req: FastifyRequest, reply: FastifyReply, path: string): void {
  void reply.code(404).send({ code: 'not_found', message: `no route ${req.method} ${path}`, request_id: req.id });
}
