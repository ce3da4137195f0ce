import {
  DOCUMENT_TYPES,
  documentTypes,
  personalInfoShape,
  timeSeries,
  type DocumentType,
  type DocumentTypeInfo,
} from '../oura/registry.js';
import type { ObjectShape, Shape } from '../oura/shape.js';
import { noise, type Rng } from './prng.js';
import { addDays, dayStartMs, utcDateTime, wallClock } from './time.js';

/**
 * Invents Oura documents by walking the registry's shapes: every property of
 * the spec is filled with a value of the right type, and field names we know
 * (scores, contributors, durations, timestamps…) get plausible values. A few
 * per-type touches keep related fields consistent (a sleep ends after it starts).
 */

export type Doc = Record<string, unknown> & { id: string };
type Json = Record<string, unknown>;

export interface GenContext {
  /** The calendar day the document belongs to. */
  day: string;
  /** The user's UTC offset, `+02:00`. */
  offset: string;
  rng: Rng;
}

const NULL_RATE = 0.05;
const OMIT_RATE = 0.03;

const ACTIVITIES = ['walking', 'running', 'cycling', 'strength_training', 'yoga', 'swimming', 'hiking'];
const TAG_CODES = ['tag_generic_caffeine', 'tag_generic_alcohol', 'tag_generic_late_meal', 'tag_generic_stress', 'custom'];
const TAGS = ['tag_generic_nocaffeine', 'tag_generic_sauna', 'tag_generic_meditation', 'tag_generic_travel', 'tag_generic_sick'];
const WORDS = ['calm', 'busy', 'late dinner', 'long walk', 'travel day', 'slept well', 'headache', 'coffee'];

/** Values for integer fields, chosen by field name (and its parent's name). */
function intFor(name: string, parent: string, r: Rng): number {
  if (parent === 'contributors') return r.int(1, 100);
  if (/_delta$/.test(name)) return r.int(-5, 5);
  if (/score$|efficiency/.test(name)) return r.int(40, 100);
  switch (name) {
    case 'steps': return r.int(2000, 18000);
    case 'active_calories': return r.int(100, 900);
    case 'total_calories': return r.int(1800, 3200);
    case 'target_calories': return r.int(300, 700);
    case 'target_meters': return r.int(6000, 14000);
    case 'meters_to_target': return r.int(0, 8000);
    case 'equivalent_walking_distance': return r.int(1500, 15000);
    case 'inactivity_alerts': return r.int(0, 4);
    case 'high_activity_time': case 'non_wear_time': return r.int(0, 3600);
    case 'medium_activity_time': return r.int(1200, 7200);
    case 'low_activity_time': return r.int(7200, 21600);
    case 'sedentary_time': case 'resting_time': return r.int(18000, 36000);
    case 'average_hrv': return r.int(20, 90);
    case 'lowest_heart_rate': return r.int(42, 60);
    case 'latency': return r.int(120, 1800);
    case 'restless_periods': return r.int(50, 300);
    case 'period': return r.int(0, 2);
    case 'breathing_disturbance_index': return r.int(0, 20);
    case 'recovery_high': case 'stress_high': return r.int(0, 4) * 900;
    case 'vascular_age': return r.int(25, 60);
    case 'vo2_max': return r.int(30, 55);
    case 'size': return r.int(6, 13);
    case 'age': return r.int(20, 70);
    case 'day_tz': return 7200;
    case 'start_offset': return r.int(-7200, 0);
    case 'end_offset': return r.int(0, 3600);
  }
  if (/met_minutes$/.test(name)) return r.int(0, 400);
  if (/_time$|_duration$|^time_in/.test(name)) return r.int(0, 7200);
  return r.int(0, 100);
}

/** Values for number fields, chosen by field name. */
function numberFor(name: string, parent: string, r: Rng): number {
  if (parent === 'contributors') return r.float(1, 100, 1);
  switch (name) {
    case 'average_met_minutes': return r.float(1, 3, 3);
    case 'average_breath': return r.float(12, 18, 3);
    case 'average_heart_rate': return r.float(48, 70, 3);
    case 'temperature_deviation': case 'temperature_trend_deviation': return r.float(-1, 1, 2);
    case 'average': return r.float(94, 99, 3);
    case 'pulse_wave_velocity': return r.float(5, 9, 2);
    case 'calories': return r.float(100, 800, 1);
    case 'distance': return r.float(1000, 15000, 1);
    case 'weight': return r.float(50, 100, 1);
    case 'height': return r.float(1.55, 1.95, 2);
    case 'heart_rate': return r.float(50, 75, 1);
    case 'heart_rate_variability': case 'hrv': return r.float(20, 90, 1);
    case 'met': return r.float(0.9, 5, 1);
    case 'motion_count': return r.int(0, 5);
  }
  return r.float(0, 100, 2);
}

function stringFor(name: string, r: Rng): string {
  switch (name) {
    case 'class_5_min': return r.chars('012345', 288);
    case 'movement_30_sec': return r.chars('1234', 960);
    case 'sleep_phase_30_sec': return r.chars('1234', 960);
    case 'sleep_phase_5_min': case 'app_sleep_phase_5_min': return r.chars('1234', 96);
    case 'firmware_version': return `2.${r.int(5, 9)}.${r.int(0, 30)}`;
    case 'ring_id': return r.chars('0123456789abcdef', 32);
    case 'activity': return r.pick(ACTIVITIES);
    case 'tag_type_code': return r.pick(TAG_CODES);
    case 'biological_sex': return r.pick(['male', 'female']);
    case 'tags': return r.pick(TAGS);
    case 'id': return r.uuid();
  }
  return r.pick(WORDS);
}

function isSample(shape: ObjectShape): boolean {
  return 'interval' in shape.properties && 'items' in shape.properties;
}

/** A PublicSample: `{interval, items, timestamp}` with values fitting what it samples. */
function sample(name: string, shape: ObjectShape, ctx: GenContext, startMinutes: number): Json {
  const { rng } = ctx;
  const interval = name === 'met' ? 60 : name === 'motion_count' ? 30 : 300;
  const itemShape = (shape.properties.items as Extract<Shape, { kind: 'array' }>).items;
  const items = Array.from({ length: rng.int(6, 24) }, () =>
    itemShape.nullable && rng.chance(NULL_RATE) ? null : numberFor(name, '', rng),
  );
  const out: Json = {};
  for (const [k, s] of Object.entries(shape.properties)) {
    if (k === 'interval') out[k] = interval;
    else if (k === 'items') out[k] = items;
    else if (k === 'timestamp') out[k] = wallClock(ctx.day, startMinutes, ctx.offset);
    else out[k] = valueFor(k, name, s, ctx);
  }
  return out;
}

/** A value of `shape` for a field named `name` inside `parent`. */
export function valueFor(name: string, parent: string, shape: Shape, ctx: GenContext, nested = true): unknown {
  const { rng } = ctx;
  if (nested && shape.nullable && rng.chance(NULL_RATE)) return null;
  switch (shape.kind) {
    case 'string':
      if (shape.format === 'date') return ctx.day;
      if (shape.format === 'datetime') return wallClock(ctx.day, rng.int(6 * 60, 21 * 60), ctx.offset);
      if (shape.format === 'localdatetime') return wallClock(ctx.day, rng.int(6 * 60, 21 * 60), '');
      return stringFor(name, rng);
    case 'enum':
      return rng.pick(shape.values);
    case 'integer':
      return intFor(name, parent, rng);
    case 'number':
      return numberFor(name, parent, rng);
    case 'boolean':
      return rng.chance(0.1);
    case 'any':
      return null;
    case 'array':
      return Array.from({ length: rng.int(1, 5) }, () => valueFor(name, parent, shape.items, ctx));
    case 'object': {
      if (isSample(shape)) return sample(name, shape, ctx, rng.int(0, 23 * 60));
      const out: Json = {};
      for (const [k, s] of Object.entries(shape.properties)) out[k] = valueFor(k, name, s, ctx);
      return out;
    }
  }
}

/** Per-type touches that make related fields agree. Only keys the spec has are set. */
type Tweak = (doc: Json, ctx: GenContext, info: DocumentTypeInfo) => void;

function setter(doc: Json, info: DocumentTypeInfo) {
  return (key: string, value: unknown): void => {
    if (key in info.shape.properties) doc[key] = value;
  };
}

const sampleOf = (info: DocumentTypeInfo, key: string, ctx: GenContext, startMinutes: number): Json | null => {
  const s = info.shape.properties[key];
  return s && s.kind === 'object' ? sample(key, s, ctx, startMinutes) : null;
};

const TWEAKS: Partial<Record<DocumentType, Tweak>> = {
  sleep: (doc, ctx, info) => {
    const set = setter(doc, info);
    const { rng } = ctx;
    const start = rng.int(-90, 30); // minutes from midnight of `day` (negative: the evening before)
    const inBed = rng.int(390, 540);
    const awake = rng.int(15, 60) * 60;
    const total = inBed * 60 - awake;
    const deep = Math.round(total * rng.float(0.12, 0.22));
    const rem = Math.round(total * rng.float(0.18, 0.26));
    set('bedtime_start', wallClock(ctx.day, start, ctx.offset));
    set('bedtime_end', wallClock(ctx.day, start + inBed, ctx.offset));
    set('time_in_bed', inBed * 60);
    set('awake_time', awake);
    set('total_sleep_duration', total);
    set('deep_sleep_duration', deep);
    set('rem_sleep_duration', rem);
    set('light_sleep_duration', total - deep - rem);
    set('efficiency', Math.round((total / (inBed * 60)) * 100));
    set('type', 'long_sleep');
    set('low_battery_alert', false);
    set('sleep_phase_5_min', rng.chars('1234', Math.floor(inBed / 5)));
    set('app_sleep_phase_5_min', rng.chars('1234', Math.floor(inBed / 5)));
    set('movement_30_sec', rng.chars('1234', inBed * 2));
    set('sleep_phase_30_sec', rng.chars('1234', inBed * 2));
    set('heart_rate', sampleOf(info, 'heart_rate', ctx, start));
    set('hrv', sampleOf(info, 'hrv', ctx, start));
  },
  workout: (doc, ctx, info) => {
    const set = setter(doc, info);
    const start = ctx.rng.int(7 * 60, 19 * 60);
    set('start_datetime', wallClock(ctx.day, start, ctx.offset));
    set('end_datetime', wallClock(ctx.day, start + ctx.rng.int(20, 90), ctx.offset));
    set('label', null);
  },
  session: (doc, ctx, info) => {
    const set = setter(doc, info);
    const start = ctx.rng.int(7 * 60, 21 * 60);
    set('start_datetime', wallClock(ctx.day, start, ctx.offset));
    set('end_datetime', wallClock(ctx.day, start + ctx.rng.int(5, 30), ctx.offset));
    for (const k of ['heart_rate', 'heart_rate_variability', 'motion_count']) set(k, sampleOf(info, k, ctx, start));
  },
  tag: (doc, ctx, info) => {
    const set = setter(doc, info);
    set('timestamp', wallClock(ctx.day, ctx.rng.int(7 * 60, 22 * 60), ''));
    set('tags', [ctx.rng.pick(TAGS)]);
  },
  enhanced_tag: (doc, ctx, info) => {
    const set = setter(doc, info);
    const { rng } = ctx;
    const start = rng.int(7 * 60, 20 * 60);
    const code = rng.pick(TAG_CODES);
    const withDuration = rng.chance(0.5);
    set('tag_type_code', code);
    set('custom_name', code === 'custom' ? rng.pick(WORDS) : null);
    set('start_time', wallClock(ctx.day, start, ''));
    set('end_time', withDuration ? wallClock(ctx.day, start + rng.int(30, 180), '') : null);
    set('end_day', withDuration ? ctx.day : null);
  },
  rest_mode_period: (doc, ctx, info) => {
    const set = setter(doc, info);
    const { rng } = ctx;
    const length = rng.int(1, 3);
    const endDay = addDays(ctx.day, length);
    const ongoing = dayStartMs(endDay) > Date.now();
    set('start_day', ctx.day);
    set('start_time', wallClock(ctx.day, rng.int(8 * 60, 20 * 60), ctx.offset));
    set('end_day', ongoing ? null : endDay);
    set('end_time', ongoing ? null : wallClock(endDay, rng.int(8 * 60, 20 * 60), ctx.offset));
    set(
      'episodes',
      Array.from({ length: rng.int(1, 3) }, (_, i) => ({
        tags: [rng.pick(['rest_mode_sick', 'rest_mode_recovery', 'rest_mode_fever'])],
        timestamp: wallClock(addDays(ctx.day, Math.min(i, length)), 9 * 60, ctx.offset),
      })),
    );
  },
  sleep_time: (doc, ctx, info) => {
    const set = setter(doc, info);
    const start = ctx.rng.int(-7200, -1800);
    set('optimal_bedtime', { day_tz: offsetSeconds(ctx.offset), start_offset: start, end_offset: start + 3600 });
  },
  ring_configuration: (doc, ctx, info) => {
    const set = setter(doc, info);
    set('set_up_at', utcDateTime(dayStartMs(ctx.day) + ctx.rng.int(8 * 60, 20 * 60) * 60_000));
  },
  daily_activity: (doc, ctx, info) => {
    const set = setter(doc, info);
    set('timestamp', wallClock(ctx.day, 4 * 60, ctx.offset));
    set('met', sampleOf(info, 'met', ctx, 4 * 60));
  },
};

function offsetSeconds(offset: string): number {
  const m = /^([+-])(\d{2}):(\d{2})$/.exec(offset);
  if (!m) return 0;
  return (m[1] === '-' ? -1 : 1) * (Number(m[2]) * 3600 + Number(m[3]) * 60);
}

/** Daily documents carry a `timestamp` at 04:00 local, when Oura's day starts. */
const DAY_START_TIMESTAMP = new Set<DocumentType>(DOCUMENT_TYPES.filter((t) => t.startsWith('daily_')));

/** Generates one document of `type` for `ctx.day`, valid per the spec; `fields` override generated values. */
export function generateDocument(type: DocumentType, ctx: GenContext, fields: Json = {}): Doc {
  const info = documentTypes[type];
  const doc: Json = {};
  for (const [k, s] of Object.entries(info.shape.properties)) doc[k] = valueFor(k, type, s, ctx, false);
  doc.id = ctx.rng.uuid();
  for (const f of info.dayFields) doc[f] = ctx.day;
  if (DAY_START_TIMESTAMP.has(type) && 'timestamp' in doc) doc.timestamp = wallClock(ctx.day, 4 * 60, ctx.offset);
  TWEAKS[type]?.(doc, ctx, info);

  // Oura leaves out or nulls some fields now and then; keep ids, days and times.
  const keep = new Set(['id', ...info.dayFields, ...info.dateTimeFields]);
  for (const [k, s] of Object.entries(info.shape.properties)) {
    if (keep.has(k)) continue;
    if (!info.shape.required.includes(k) && ctx.rng.chance(OMIT_RATE)) delete doc[k];
    else if (s.nullable && ctx.rng.chance(NULL_RATE)) doc[k] = null;
  }
  return { ...doc, ...fields, id: typeof fields.id === 'string' ? fields.id : (doc.id as string) };
}

/**
 * Changes a document so an update is observable: its score if it has one,
 * else the first other number, else free text, an enum or a list. Returns the changed fields.
 */
export function observableChange(type: DocumentType, doc: Doc, ctx: GenContext): Json {
  const { rng } = ctx;
  const info = documentTypes[type];
  const keep = new Set(['id', ...info.dayFields, ...info.dateTimeFields]);
  const entries = Object.entries(info.shape.properties).filter(([k]) => !keep.has(k));
  const numeric = entries.find(([k]) => k === 'score') ?? entries.find(([, s]) => s.kind === 'integer' || s.kind === 'number');
  if (numeric) {
    const [k, s] = numeric;
    let v: number;
    do v = s.kind === 'integer' ? intFor(k, type, rng) : numberFor(k, type, rng);
    while (v === doc[k]);
    return { [k]: v };
  }
  const text =
    entries.find(([k]) => k === 'text' || k === 'comment') ?? entries.find(([, s]) => s.kind === 'string' && !s.format);
  if (text) return { [text[0]]: `${stringFor(text[0], rng)} (edited ${rng.int(1, 9999)})` };
  for (const [k, s] of entries) {
    if (s.kind === 'enum') {
      const values = s.values.filter((v) => v !== doc[k]);
      if (values.length > 0) return { [k]: rng.pick(values) };
    }
    if (s.kind === 'array') {
      const prev = Array.isArray(doc[k]) ? (doc[k] as unknown[]) : [];
      return { [k]: [...prev, valueFor(k, type, s.items, ctx, false)] };
    }
  }
  return {};
}

/** How often a type gets a document: every day, once per user, or on a share of days. */
type Cadence = 'daily' | 'once' | number;
const CADENCE: Partial<Record<DocumentType, Cadence>> = {
  sleep: 'daily',
  sleep_time: 'daily',
  ring_configuration: 'once',
  tag: 0.3,
  workout: 0.5,
  session: 0.3,
  enhanced_tag: 0.25,
  rest_mode_period: 0.05,
  vo2_max: 0.15,
};
const cadenceOf = (t: DocumentType): Cadence => CADENCE[t] ?? (t.startsWith('daily_') ? 'daily' : 0.2);

/**
 * History for the `days` days ending with `today`, every type at least once
 * (so each route has something to return), in day order.
 */
export function generateHistory(today: string, days: number, offset: string, rng: Rng): Array<{ type: DocumentType; doc: Doc }> {
  const out: Array<{ type: DocumentType; doc: Doc }> = [];
  if (days <= 0) return out;
  const first = addDays(today, -(days - 1));
  const had = new Set<DocumentType>();
  const add = (type: DocumentType, day: string): void => {
    out.push({ type, doc: generateDocument(type, { day, offset, rng }) });
    had.add(type);
  };
  for (let i = 0; i < days; i++) {
    const day = addDays(first, i);
    for (const type of DOCUMENT_TYPES) {
      const c = cadenceOf(type);
      if (c === 'daily' || (c === 'once' && i === 0)) add(type, day);
      else if (typeof c === 'number' && rng.chance(c)) add(type, day);
    }
  }
  for (const type of DOCUMENT_TYPES) if (!had.has(type)) add(type, addDays(first, rng.int(0, days - 1)));
  return out;
}

/** personal_info for a user, from the spec's shape. */
export function generatePersonalInfo(id: string, email: string, rng: Rng): Json {
  const ctx: GenContext = { day: '1990-01-01', offset: '+00:00', rng };
  const out: Json = {};
  for (const [k, s] of Object.entries(personalInfoShape.properties)) out[k] = valueFor(k, 'personal_info', s, ctx, false);
  return { ...out, id, email };
}

// ---- time series -------------------------------------------------------------

const HR_STEP_MS = 5 * 60_000;
const BATTERY_STEP_MS = 30 * 60_000;

function enumValues(shape: Shape | undefined): readonly string[] {
  return shape?.kind === 'enum' ? shape.values : [];
}
const HR_SOURCES = enumValues(timeSeries.heartrate.shape.properties.source);
const hrSource = (want: string): string => (HR_SOURCES.includes(want) ? want : (HR_SOURCES[0] ?? want));

export interface SeriesUser {
  seed: number;
  /** Minutes east of UTC, for day/night rhythm. */
  offsetMin: number;
}

/** One heart-rate row at `t` (a multiple of 5 minutes): low at night, a workout some evenings. */
function heartrateRow(u: SeriesUser, t: number): Json {
  const localMs = t + u.offsetMin * 60_000;
  const hour = (((localMs % 86_400_000) + 86_400_000) % 86_400_000) / 3_600_000;
  const dayIndex = Math.floor(localMs / 86_400_000);
  const n = noise(u.seed, t / HR_STEP_MS);
  let bpm: number;
  let source: string;
  if (hour < 7 || hour >= 23) {
    bpm = 48 + Math.round(n * 12);
    source = hrSource('sleep');
  } else if (hour >= 18 && hour < 18.75 && noise(u.seed ^ 0x5bd1e995, dayIndex) < 0.4) {
    bpm = 115 + Math.round(n * 45);
    source = hrSource('workout');
  } else {
    bpm = 62 + Math.round(n * 30);
    source = n < 0.05 ? hrSource('rest') : hrSource('awake');
  }
  return { timestamp: utcDateTime(t), timestamp_unix: t, bpm, source };
}

/** One battery row at `t`: drains over two days, then charges for two hours. */
function batteryRow(u: SeriesUser, t: number): Json {
  const pos = (Math.floor(t / BATTERY_STEP_MS) + (u.seed % 96)) % 96;
  const charging = pos < 4;
  const level = charging ? 40 + pos * 20 : Math.max(5, Math.round(100 - (pos - 4) * 0.95));
  return { timestamp: utcDateTime(t), timestamp_unix: t, level, charging, in_charger: charging };
}

export const SERIES: Record<keyof typeof timeSeries, { stepMs: number; row: (u: SeriesUser, t: number) => Json }> = {
  heartrate: { stepMs: HR_STEP_MS, row: heartrateRow },
  ring_battery_level: { stepMs: BATTERY_STEP_MS, row: batteryRow },
};

/**
 * Rows of a series in `[fromMs, toMs)`, at most `limit`, computed on the fly
 * (each row is a pure function of user and time). `next` is where the next page starts.
 */
export function seriesPage(
  kind: keyof typeof SERIES,
  u: SeriesUser,
  fromMs: number,
  toMs: number,
  limit: number,
): { rows: Json[]; next: number | null } {
  const { stepMs, row } = SERIES[kind];
  const rows: Json[] = [];
  let t = Math.ceil(fromMs / stepMs) * stepMs;
  for (; t < toMs && rows.length < limit; t += stepMs) rows.push(row(u, t));
  return { rows, next: t < toMs ? t : null };
}

