import type { z } from 'zod';
import { lenientSchema, type ObjectShape, type Shape } from './shape.js';
import { spec } from './spec.generated.js';

/**
 * Every Oura data type the service knows, described once. Routes, workers,
 * backfill, the database tables and the simulator all read this registry.
 */
export const DOCUMENT_TYPES = [
  'tag',
  'enhanced_tag',
  'workout',
  'session',
  'sleep',
  'daily_sleep',
  'daily_readiness',
  'daily_activity',
  'daily_spo2',
  'sleep_time',
  'rest_mode_period',
  'ring_configuration',
  'daily_stress',
  'daily_cardiovascular_age',
  'daily_resilience',
  'vo2_max',
] as const;
export type DocumentType = (typeof DOCUMENT_TYPES)[number];

export const TIME_SERIES = ['heartrate', 'ring_battery_level'] as const;
export type TimeSeriesType = (typeof TIME_SERIES)[number];

export const WEBHOOK_OPERATIONS = ['create', 'update', 'delete'] as const;
export type WebhookOperation = (typeof WEBHOOK_OPERATIONS)[number];

export interface DocumentTypeInfo {
  name: DocumentType;
  /** Collection route, e.g. `/v2/usercollection/vO2_max`; single documents at `${path}/{id}`. */
  path: string;
  /** Name of the schema in the OpenAPI document. */
  schemaName: string;
  shape: ObjectShape;
  /** Top-level fields, in spec order; each is a column of `oura.<name>`. */
  fields: string[];
  /** Fields holding a calendar day (ISODate); the first is what start_date/end_date filter on. */
  dayFields: string[];
  /** Fields holding a date-time. */
  dateTimeFields: string[];
  /** The field collection queries filter on, or null when the route takes no dates. */
  dateField: string | null;
  /** Oura sends webhooks for this type. */
  webhook: boolean;
  /** Validates a document as Oura sends it: lenient, keeps unknown fields. */
  schema: z.ZodType<Record<string, unknown> & { id: string }>;
}

export interface TimeSeriesInfo {
  name: TimeSeriesType;
  path: string;
  schemaName: string;
  shape: ObjectShape;
  fields: string[];
  schema: z.ZodType<Record<string, unknown> & { timestamp: string }>;
}

function fieldsOf(shape: ObjectShape, pred: (s: Shape) => boolean): string[] {
  return Object.entries(shape.properties)
    .filter(([, s]) => pred(s))
    .map(([k]) => k);
}

function buildDocumentType(name: DocumentType): DocumentTypeInfo {
  const entry = spec.documentTypes[name] as (typeof spec.documentTypes)[DocumentType];
  const shape = entry.shape as ObjectShape;
  const dayFields = fieldsOf(shape, (s) => s.kind === 'string' && s.format === 'date');
  return {
    name,
    path: entry.path,
    schemaName: entry.schemaName,
    shape,
    fields: Object.keys(shape.properties),
    dayFields,
    dateTimeFields: fieldsOf(shape, (s) => s.kind === 'string' && (s.format === 'datetime' || s.format === 'localdatetime')),
    dateField: entry.acceptsDates ? (['day', 'start_day'].find((f) => dayFields.includes(f)) ?? dayFields[0] ?? null) : null,
    webhook: entry.webhook,
    schema: lenientSchema(shape, ['id']) as DocumentTypeInfo['schema'],
  };
}

export const documentTypes: Readonly<Record<DocumentType, DocumentTypeInfo>> = Object.fromEntries(
  DOCUMENT_TYPES.map((n) => [n, buildDocumentType(n)]),
) as Record<DocumentType, DocumentTypeInfo>;

export const timeSeries: Readonly<Record<TimeSeriesType, TimeSeriesInfo>> = Object.fromEntries(
  TIME_SERIES.map((n) => {
    const entry = spec.timeSeries[n];
    const shape = entry.shape as ObjectShape;
    return [
      n,
      {
        name: n,
        path: entry.path,
        schemaName: entry.schemaName,
        shape,
        fields: Object.keys(shape.properties),
        schema: lenientSchema(shape, ['timestamp']) as TimeSeriesInfo['schema'],
      },
    ];
  }),
) as Record<TimeSeriesType, TimeSeriesInfo>;

export const personalInfoPath = spec.personalInfo.path;
export const personalInfoShape = spec.personalInfo.shape as ObjectShape;
export const subscriptionShape = spec.subscriptionShape as ObjectShape;
/** Every OAuth2 scope the spec names; the connect flow asks for all of them. */
export const OURA_SCOPES: readonly string[] = spec.oauthScopes;
/** Data types Oura's webhooks may name (includes types we do not fetch, e.g. `meal`). */
export const WEBHOOK_DATA_TYPES: readonly string[] = spec.webhookDataTypes;

export function isDocumentType(s: string): s is DocumentType {
  return (DOCUMENT_TYPES as readonly string[]).includes(s);
}

/** Single-document route of a type. */
export function documentPath(type: DocumentType, id: string): string {
  return `${documentTypes[type].path}/${encodeURIComponent(id)}`;
}
