/**
 * The reference of `npm run bench:ingest`: a bare `node:http` server that does
 * only what no webhook endpoint can skip — read the body, check the same
 * HMAC signature (`src/crypto.ts`) — and answers 200. No Postgres, no Redis,
 * no framework. Spawned by bench/ingest.ts as its own process:
 *
 *   PORT=… OURA_CLIENT_SECRET=… node --import tsx bench/bare-webhook-server.ts
 */
import { createServer } from 'node:http';
import { verifyWebhookSignature } from '../src/crypto.js';

const port = Number(process.env.PORT ?? 0);
const secret = process.env.OURA_CLIENT_SECRET ?? '';
if (!secret) {
  process.stderr.write('bare-webhook-server: OURA_CLIENT_SECRET is required\n');
  process.exit(2);
}

const server = createServer((req, res) => {
  if (req.method === 'GET' && req.url === '/readyz') {
    res.writeHead(200, { 'content-type': 'application/json' }).end('{"status":"ready"}');
    return;
  }
  if (req.method !== 'POST' || req.url !== '/webhooks/oura') {
    res.writeHead(404).end();
    return;
  }
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    const signature = req.headers['x-oura-signature'];
    const timestamp = req.headers['x-oura-timestamp'];
    const ok =
      typeof signature === 'string' &&
      typeof timestamp === 'string' &&
      verifyWebhookSignature(secret, timestamp, Buffer.concat(chunks), signature.trim());
    if (ok) res.writeHead(200, { 'content-type': 'application/json' }).end('{"status":"accepted"}');
    else res.writeHead(401, { 'content-type': 'application/json' }).end('{"code":"invalid_signature"}');
  });
});
server.listen(port, '127.0.0.1', () => process.stdout.write(`listening on ${(server.address() as { port: number }).port}\n`));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
