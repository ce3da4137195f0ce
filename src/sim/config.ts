import { z } from 'zod';

/**
 * The simulator CLI's settings, read once from the environment. A bad value
 * stops start-up with one line naming the variable.
 */

/** `N/W`: at most N requests per rolling W seconds; `none` (or empty) turns the tier off. */
const RateLimit = z
  .string()
  .trim()
  .regex(/^(none|\d+\/\d+)?$/, 'expected N/W (requests per seconds, e.g. 5000/300) or "none"')
  .transform((s) => {
    if (s === '' || s === 'none') return null;
    const [limit, windowS] = s.split('/').map(Number) as [number, number];
    return { limit, windowS };
  })
  .refine((l) => l === null || l.windowS > 0, 'the window W must be at least 1 second');

/** `from=to[,from=to…]`: callbacks starting with `from` are called at `to` instead. */
const Rewrite = z
  .string()
  .trim()
  .regex(/^([^=,\s]+=[^=,\s]+)?(,[^=,\s]+=[^=,\s]+)*$/, 'expected from=to[,from=to], e.g. http://localhost:8080=http://api:8080')
  .transform((s) =>
    s
      .split(',')
      .filter(Boolean)
      .map((pair) => {
        const [from, to] = pair.split('=') as [string, string];
        return { from, to };
      }),
  );

const Int = (min: number, max: number) => z.coerce.number().int().min(min).max(max);

export const SimConfig = z.object({
  SIM_PORT: Int(0, 65535).default(8090),
  SIM_HOST: z.string().min(1).default('0.0.0.0'),
  OURA_CLIENT_ID: z.string().min(1).default('sim-client-id'),
  OURA_CLIENT_SECRET: z.string().min(1).default('sim-client-secret'),
  SIM_APP_RATE_LIMIT: RateLimit.prefault('5000/300'),
  SIM_TOKEN_RATE_LIMIT: RateLimit.prefault('none'),
  SIM_HISTORY_DAYS: Int(0, 3650).default(0),
  SIM_SEED: Int(0, 2 ** 32 - 1).default(1),
  SIM_CALLBACK_REWRITE: Rewrite.prefault(''),
});
export type SimConfig = z.infer<typeof SimConfig>;

/** Parses the environment; throws an Error whose message is one line naming the bad variable. */
export function readSimConfig(env: Record<string, string | undefined> = process.env): SimConfig {
  const keys = Object.keys(SimConfig.shape);
  const picked = Object.fromEntries(keys.filter((k) => env[k] !== undefined && env[k] !== '').map((k) => [k, env[k]]));
  const parsed = SimConfig.safeParse(picked);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  const name = String(issue?.path[0] ?? 'environment');
  throw new Error(`Invalid ${name}=${JSON.stringify(env[name] ?? '')}: ${issue?.message ?? 'invalid value'}`);
}
