/**
 * A small deterministic PRNG (mulberry32) and the helpers the generator needs.
 * Everything the simulator invents (documents, ids, series values) comes from
 * here, so a given seed always yields the same data.
 */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A 32-bit FNV-1a hash of a string, to derive per-user seeds from ids. */
export function hashString(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** One pseudo-random number in [0, 1) as a pure function of its inputs. */
export function noise(seed: number, n: number): number {
  return mulberry32((seed ^ Math.imul(n | 0, 0x9e3779b1)) >>> 0)();
}

export function createRng(seed: number) {
  const next = mulberry32(seed);
  const int = (min: number, max: number): number => min + Math.floor(next() * (max - min + 1));
  const float = (min: number, max: number, decimals = 2): number => {
    const f = 10 ** decimals;
    return Math.round((min + next() * (max - min)) * f) / f;
  };
  return {
    next,
    int,
    float,
    chance: (p: number): boolean => next() < p,
    pick: <T>(values: readonly T[]): T => values[Math.floor(next() * values.length)] as T,
    /** A random (version 4 layout) UUID drawn from this generator. */
    uuid: (): string => {
      const hex = Array.from({ length: 32 }, () => Math.floor(next() * 16).toString(16));
      hex[12] = '4';
      hex[16] = ((parseInt(hex[16] ?? '0', 16) & 0x3) | 0x8).toString(16);
      const h = hex.join('');
      return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
    },
    /** A string of `length` characters drawn from `alphabet`. */
    chars: (alphabet: string, length: number): string =>
      Array.from({ length }, () => alphabet[Math.floor(next() * alphabet.length)]).join(''),
  };
}

export type Rng = ReturnType<typeof createRng>;
