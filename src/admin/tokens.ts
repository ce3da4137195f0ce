import type { Deps } from '../deps.js';

/**
 * Key rotation, step two: re-encrypts every stored token under the current
 * TOKEN_ENCRYPTION_KEY (values under a key listed in
 * TOKEN_ENCRYPTION_KEY_PREVIOUS are read with it). Once it reports nothing
 * left, the previous key can be removed from the configuration.
 */
export async function reencryptTokens(
  deps: Pick<Deps, 'users' | 'cipher' | 'log'>,
  onProgress?: (done: number, total: number) => void,
): Promise<{ users: number; reencrypted: number; alreadyCurrent: number; unreadable: string[] }> {
  const rows = await deps.users.tokenCiphertexts();
  let reencrypted = 0;
  let alreadyCurrent = 0;
  const unreadable: string[] = [];
  for (const [i, row] of rows.entries()) {
    onProgress?.(i + 1, rows.length);
    const values = [row.access, row.refresh];
    if (values.every((v) => v === null || deps.cipher.isCurrent(v))) {
      alreadyCurrent++;
      continue;
    }
    try {
      const to = {
        access: row.access === null ? null : deps.cipher.encrypt(deps.cipher.decrypt(row.access)),
        refresh: row.refresh === null ? null : deps.cipher.encrypt(deps.cipher.decrypt(row.refresh)),
      };
      // A token refreshed meanwhile is already under the current key.
      if (await deps.users.replaceCiphertexts(row.id, row, to)) reencrypted++;
      else alreadyCurrent++;
    } catch {
      unreadable.push(row.id);
    }
  }
  deps.log.info({ module: 'keys', users: rows.length, reencrypted, unreadable: unreadable.length }, 'tokens re-encrypted');
  return { users: rows.length, reencrypted, alreadyCurrent, unreadable };
}
