/**
 * Oura's two rate-limit tiers as rolling windows: `application` counts every
 * request of the app, `token` counts each access token on its own. A rejected
 * request is not counted.
 */
export interface Limit {
  limit: number;
  windowS: number;
}

export type Tier = 'application' | 'token';

export interface Rejection {
  tier: Tier;
  limit: number;
  windowS: number;
  /** Whole seconds until one more request would be accepted (at least 1). */
  retryAfterS: number;
  /** Epoch seconds at which the window is empty again (quota fully restored). */
  resetS: number;
}

export function createRateLimiter(limits: () => { app: Limit | null; token: Limit | null }) {
  let appHits: number[] = [];
  const tokenHits = new Map<string, number[]>();

  const live = (hits: number[], now: number, windowS: number): number[] => {
    const from = now - windowS * 1000;
    let i = 0;
    while (i < hits.length && (hits[i] as number) <= from) i++;
    return i === 0 ? hits : hits.slice(i);
  };

  const rejection = (tier: Tier, l: Limit, hits: number[], now: number): Rejection => {
    const w = l.windowS * 1000;
    const oldest = hits[0] ?? now;
    const newest = hits[hits.length - 1] ?? now;
    return {
      tier,
      limit: l.limit,
      windowS: l.windowS,
      retryAfterS: Math.max(1, Math.ceil((oldest + w - now) / 1000)),
      resetS: Math.ceil((newest + w) / 1000),
    };
  };

  return {
    /** Counts a request of `token` at `now`, or says which tier refuses it. */
    hit(token: string, now = Date.now()): Rejection | null {
      const { app, token: tok } = limits();
      const rejections: Rejection[] = [];
      if (app) {
        appHits = live(appHits, now, app.windowS);
        if (appHits.length >= app.limit) rejections.push(rejection('application', app, appHits, now));
      }
      let mine = tokenHits.get(token) ?? [];
      if (tok) {
        mine = live(mine, now, tok.windowS);
        tokenHits.set(token, mine);
        if (mine.length >= tok.limit) rejections.push(rejection('token', tok, mine, now));
      }
      if (rejections.length > 0) return rejections.sort((a, b) => b.retryAfterS - a.retryAfterS)[0] ?? null;
      if (app) appHits.push(now);
      if (tok) mine.push(now);
      return null;
    },
    /** Empties a tier's windows (after its limit changes). */
    reset(tier: Tier | 'all' = 'all'): void {
      if (tier !== 'token') appHits = [];
      if (tier !== 'application') tokenHits.clear();
    },
  };
}

export type RateLimiter = ReturnType<typeof createRateLimiter>;
