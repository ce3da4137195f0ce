import { createCipheriv, createDecipheriv, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

/**
 * Token encryption at rest: AES-256-GCM with a random 96-bit IV per value.
 * Stored as `v1.<iv>.<tag>.<ciphertext>` (base64url), so a later key rotation
 * can add `v2` without touching old rows.
 */
export function createTokenCipher(keyBase64: string, previousKeysBase64: readonly string[] = []) {
  const key = Buffer.from(keyBase64, 'base64');
  if (key.length !== 32) throw new Error('TOKEN_ENCRYPTION_KEY must be 32 bytes');
  // Keys being rotated out: still read, never written.
  const readKeys = [key, ...previousKeysBase64.map((k) => Buffer.from(k, 'base64'))];

  function decryptWith(k: Buffer, iv: string, tag: string, ct: string): string {
    const decipher = createDecipheriv('aes-256-gcm', k, Buffer.from(iv, 'base64url'));
    decipher.setAuthTag(Buffer.from(tag, 'base64url'));
    return Buffer.concat([decipher.update(Buffer.from(ct, 'base64url')), decipher.final()]).toString('utf8');
  }

  return {
    encrypt(plaintext: string): string {
      const iv = randomBytes(12);
      const cipher = createCipheriv('aes-256-gcm', key, iv);
      const ct = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
      return ['v1', iv.toString('base64url'), cipher.getAuthTag().toString('base64url'), ct.toString('base64url')].join('.');
    },
    decrypt(stored: string): string {
      const [version, iv, tag, ct] = stored.split('.');
      if (version !== 'v1' || !iv || !tag || ct === undefined) throw new Error('unrecognised token ciphertext');
      for (const k of readKeys) {
        try {
          return decryptWith(k, iv, tag, ct);
        } catch {
          /* not this key: GCM's tag check failed */
        }
      }
      throw new Error('token ciphertext does not match TOKEN_ENCRYPTION_KEY or any previous key');
    },
    /** True when the value is encrypted under the current key (rotation done for it). */
    isCurrent(stored: string): boolean {
      const [, iv, tag, ct] = stored.split('.');
      if (!iv || !tag || ct === undefined) return false;
      try {
        decryptWith(key, iv, tag, ct);
        return true;
      } catch {
        return false;
      }
    },
  };
}
export type TokenCipher = ReturnType<typeof createTokenCipher>;

/** Constant-time string comparison that does not leak length through early exit. */
export function safeEqual(a: string, b: string): boolean {
  const ha = createHmac('sha256', 'cmp').update(a).digest();
  const hb = createHmac('sha256', 'cmp').update(b).digest();
  return timingSafeEqual(ha, hb) && a.length === b.length;
}

/** Oura's webhook signature: hex HMAC-SHA256(client secret, timestamp + raw body). */
export function webhookSignature(secret: string, timestamp: string, rawBody: Buffer | string): string {
  return createHmac('sha256', secret).update(timestamp).update(rawBody).digest('hex');
}

/** Case-insensitive, constant-time check of an `x-oura-signature` header. */
export function verifyWebhookSignature(secret: string, timestamp: string, rawBody: Buffer, signature: string): boolean {
  if (!/^[0-9a-fA-F]{64}$/.test(signature)) return false;
  const expected = createHmac('sha256', secret).update(timestamp).update(rawBody).digest();
  return timingSafeEqual(expected, Buffer.from(signature, 'hex'));
}

/** Signs and checks short-lived values such as the OAuth `state`. */
export function createSigner(secret: string) {
  const mac = (payload: string) => createHmac('sha256', secret).update(payload).digest('base64url');
  return {
    sign(payload: string): string {
      return `${payload}.${mac(payload)}`;
    },
    /** Returns the payload when the signature matches, else null. */
    verify(signed: string): string | null {
      const i = signed.lastIndexOf('.');
      if (i <= 0) return null;
      const payload = signed.slice(0, i);
      return safeEqual(mac(payload), signed.slice(i + 1)) ? payload : null;
    },
  };
}
