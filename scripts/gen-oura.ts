/**
 * Reads ../shared/oura/openapi.yml and writes the parts of it the service needs
 * at run time into the project's own code:
 *
 *   src/oura/spec.generated.ts          shapes of every document type, time series,
 *                                        personal_info, webhook enums and OAuth scopes
 *   src/db/schema/documents.generated.ts one drizzle table per document type
 *   src/db/schema/comments.generated.ts  the spec's descriptions of those tables and columns
 *
 * The service never reads the OpenAPI file itself (a container has no ../shared).
 * Run with `npm run gen:oura` after the spec changes, then `npm run db:generate`.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { parse } from 'yaml';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const specPath = process.env.OURA_OPENAPI_PATH ?? path.resolve(root, '../shared/oura/openapi.yml');

type Json = Record<string, any>;
const spec = parse(readFileSync(specPath, 'utf8')) as Json;
const schemas = spec.components.schemas as Record<string, Json>;

/** The shape vocabulary used by src/oura/shape.ts. */
export type Shape =
  | { kind: 'string'; format?: 'date' | 'datetime' | 'localdatetime'; nullable?: boolean }
  | { kind: 'integer' | 'number' | 'boolean' | 'any'; nullable?: boolean }
  | { kind: 'enum'; values: string[]; nullable?: boolean }
  | { kind: 'array'; items: Shape; nullable?: boolean }
  | { kind: 'object'; properties: Record<string, Shape>; required: string[]; nullable?: boolean };

const DATE_TIME_REFS: Record<string, 'date' | 'datetime' | 'localdatetime'> = {
  ISODate: 'date',
  LocalizedDateTime: 'datetime',
  UtcDateTime: 'datetime',
  LocalDateTime: 'localdatetime',
};

function refName(ref: string): string {
  return ref.split('/').at(-1)!;
}

function toShape(node: Json): Shape {
  const nullable = node.nullable === true ? { nullable: true } : {};
  if (node.$ref) {
    const name = refName(node.$ref);
    if (DATE_TIME_REFS[name]) return { kind: 'string', format: DATE_TIME_REFS[name], ...nullable };
    const inner = toShape(schemas[name]!);
    return { ...inner, ...nullable } as Shape;
  }
  if (node.anyOf) {
    const nonNull = (node.anyOf as Json[]).filter((n) => n.type !== 'null');
    const hasNull = nonNull.length !== node.anyOf.length;
    if (nonNull.length === 1) return { ...toShape(nonNull[0]!), ...(hasNull ? { nullable: true } : nullable) } as Shape;
    return { kind: 'any', nullable: true };
  }
  if (node.enum) return { kind: 'enum', values: node.enum as string[], ...nullable };
  switch (node.type) {
    case 'string':
      if (node.format === 'date') return { kind: 'string', format: 'date', ...nullable };
      if (node.format === 'date-time') return { kind: 'string', format: 'datetime', ...nullable };
      return { kind: 'string', ...nullable };
    case 'integer':
    case 'number':
    case 'boolean':
      return { kind: node.type, ...nullable };
    case 'array':
      return { kind: 'array', items: toShape(node.items ?? {}), ...nullable };
    case 'object': {
      const properties: Record<string, Shape> = {};
      for (const [k, v] of Object.entries((node.properties ?? {}) as Record<string, Json>)) properties[k] = toShape(v);
      return { kind: 'object', properties, required: (node.required ?? []) as string[], ...nullable };
    }
    default:
      return { kind: 'any', ...nullable };
  }
}

/** `/v2/usercollection/<x>` collection route → item schema name. */
function collectionItemSchema(routePath: string): string {
  const op = spec.paths[routePath]?.get;
  if (!op) throw new Error(`spec has no GET ${routePath}`);
  const resp = op.responses['200'].content['application/json'].schema as Json;
  const first = (resp.anyOf ?? [resp])[0] as Json;
  const wrapper = schemas[refName(first.$ref)]!;
  return refName(wrapper.properties.data.items.$ref);
}

const dataTypeEnum = (schemas.ExtApiV2DataType!.enum as string[]).slice();
const documentTypes: Array<{ name: string; path: string }> = [];
const timeSeries: Array<{ name: string; path: string }> = [];
for (const [p, item] of Object.entries(spec.paths as Record<string, Json>)) {
  const m = /^\/v2\/usercollection\/([A-Za-z0-9_]+)$/.exec(p);
  if (!m || !item.get || m[1] === 'personal_info') continue;
  const params = ((item.get.parameters ?? []) as Json[]).map((x) => x.name as string);
  const name = m[1]!.toLowerCase();
  if (params.includes('start_datetime')) timeSeries.push({ name, path: p });
  else documentTypes.push({ name, path: p });
}

const out: Json = { documentTypes: {}, timeSeries: {} };
for (const dt of documentTypes) {
  const schemaName = collectionItemSchema(dt.path);
  const hasSingle = Boolean(spec.paths[`${dt.path}/{document_id}`]);
  const params = ((spec.paths[dt.path].get.parameters ?? []) as Json[]).map((x) => x.name as string);
  out.documentTypes[dt.name] = {
    schemaName,
    path: dt.path,
    singlePath: hasSingle ? `${dt.path}/{document_id}` : null,
    acceptsDates: params.includes('start_date'),
    webhook: dataTypeEnum.includes(dt.name),
    shape: toShape(schemas[schemaName]!),
  };
}
for (const ts of timeSeries) {
  const schemaName = collectionItemSchema(ts.path);
  out.timeSeries[ts.name] = { schemaName, path: ts.path, shape: toShape(schemas[schemaName]!) };
}

const oauth = spec.components.securitySchemes.OAuth2.flows.authorizationCode;
const generated = {
  ...out,
  personalInfo: { path: '/v2/usercollection/personal_info', shape: toShape(schemas.PersonalInfoResponse!) },
  webhookDataTypes: dataTypeEnum,
  webhookOperations: schemas.WebhookOperation!.enum,
  subscriptionShape: toShape(schemas.WebhookSubscriptionModel!),
  oauthScopes: Object.keys(oauth.scopes),
  defaultAuthorizeUrl: oauth.authorizationUrl,
  defaultTokenUrl: oauth.tokenUrl,
};

const header = `// Generated by scripts/gen-oura.ts from the Oura API v2 OpenAPI document (info.version ${spec.info.version}).\n// Do not edit by hand: run \`npm run gen:oura\`.\n`;
writeFileSync(
  path.join(root, 'src/oura/spec.generated.ts'),
  `${header}import type { Shape } from './shape.js';\n\nexport const spec = ${JSON.stringify(generated, null, 2)} as const satisfies {\n  documentTypes: Record<string, { schemaName: string; path: string; singlePath: string | null; acceptsDates: boolean; webhook: boolean; shape: Shape }>;\n  timeSeries: Record<string, { schemaName: string; path: string; shape: Shape }>;\n  [k: string]: unknown;\n};\n`,
);

// ---- drizzle tables, one per document type, every top-level field a column ----
function columnFor(field: string, s: Shape): string {
  const name = JSON.stringify(field);
  switch (s.kind) {
    case 'string':
      if (s.format === 'date') return `date(${name}, { mode: 'string' })`;
      if (s.format === 'datetime') return `timestamp(${name}, { withTimezone: true, mode: 'string' })`;
      if (s.format === 'localdatetime') return `timestamp(${name}, { mode: 'string' })`;
      return `text(${name})`;
    case 'enum':
      return `text(${name})`;
    case 'integer':
      return `bigint(${name}, { mode: 'number' })`;
    case 'number':
      return `doublePrecision(${name})`;
    case 'boolean':
      return `boolean(${name})`;
    default:
      return `jsonb(${name})`;
  }
}

function camel(s: string): string {
  return s.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

let tables = `${header}import { bigint, boolean, date, doublePrecision, index, jsonb, text, timestamp } from 'drizzle-orm/pg-core';\nimport { oura, users } from './core.js';\n\n`;
const tableNames: string[] = [];
for (const [name, dt] of Object.entries(out.documentTypes as Record<string, Json>)) {
  const shape = dt.shape as Extract<Shape, { kind: 'object' }>;
  const dateField = ['day', 'start_day'].find((f) => f in shape.properties);
  const v = camel(name);
  tableNames.push(v);
  tables += `export const ${v} = oura.table(\n  ${JSON.stringify(name)},\n  {\n`;
  tables += `    id: text('id').primaryKey(),\n`;
  tables += `    user_id: text('user_id').notNull().references(() => users.id, { onDelete: 'cascade' }),\n`;
  for (const [field, fs] of Object.entries(shape.properties)) {
    if (field === 'id' || field === 'user_id' || field === 'document') continue;
    tables += `    ${JSON.stringify(field)}: ${columnFor(field, fs)},\n`;
  }
  tables += `    document: jsonb('document').notNull(),\n`;
  tables += `    fetched_at: timestamp('fetched_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),\n`;
  tables += `  },\n  (t) => [index(${JSON.stringify(`${name}_user_idx`)}).on(t.user_id${dateField ? `, t.${dateField}` : ''})],\n);\n\n`;
}
tables += `/** Drizzle table of each document type, keyed by data type. */\nexport const documentTables = {\n${Object.keys(out.documentTypes)
  .map((n) => `  ${n}: ${camel(n)},`)
  .join('\n')}\n} as const;\n`;
writeFileSync(path.join(root, 'src/db/schema/documents.generated.ts'), tables);

// ---- what the spec says of each table and column, for COMMENT ON (src/db/comments.ts) ----
const oneLine = (d: unknown): string | null => (typeof d === 'string' && d.trim() ? d.trim().replace(/\s+/g, ' ') : null);
const described: Json = {};
for (const [name, t] of [...Object.entries(out.documentTypes as Record<string, Json>), ...Object.entries(out.timeSeries as Record<string, Json>)]) {
  const schema = schemas[t.schemaName]!;
  const columns: Record<string, string> = {};
  for (const [field, p] of Object.entries((schema.properties ?? {}) as Record<string, Json>)) {
    const d = oneLine(p.description) ?? (p.$ref ? oneLine(schemas[refName(p.$ref)]?.description) : null);
    if (d) columns[field] = d;
  }
  described[name] = { schema: t.schemaName, table: oneLine(schema.description), columns };
}
writeFileSync(
  path.join(root, 'src/db/schema/comments.generated.ts'),
  `${header}\n/** The Oura spec's descriptions of each document type and time series (the table) and of its top-level fields (the columns). */\nexport const specDescriptions: Record<string, { schema: string; table: string | null; columns: Record<string, string> }> = ${JSON.stringify(described, null, 2)};\n`,
);
console.log(
  `gen-oura: ${Object.keys(out.documentTypes).length} document types, ${Object.keys(out.timeSeries).length} time series`,
);
