import { z } from 'zod';

/**
 * A JSON shape derived from the Oura OpenAPI document by scripts/gen-oura.ts.
 * The registry, the zod validators, the Postgres columns and the simulator's
 * document generator are all built from these, so each data type is described once.
 */
export type Shape =
  | { kind: 'string'; format?: 'date' | 'datetime' | 'localdatetime'; nullable?: boolean }
  | { kind: 'integer' | 'number' | 'boolean' | 'any'; nullable?: boolean }
  | { kind: 'enum'; values: readonly string[]; nullable?: boolean }
  | { kind: 'array'; items: Shape; nullable?: boolean }
  | {
      kind: 'object';
      properties: Readonly<Record<string, Shape>>;
      required: readonly string[];
      nullable?: boolean;
    };

export type ObjectShape = Extract<Shape, { kind: 'object' }>;

/**
 * A lenient validator for what Oura actually sends: every field may be null or
 * absent except those in `mustHave`, unknown fields pass through untouched, and
 * enums accept values Oura adds later. It checks that what is present has the
 * right JSON type, so a broken payload is caught without dropping anything.
 */
export function lenientSchema(shape: Shape, mustHave: readonly string[] = []): z.ZodType {
  switch (shape.kind) {
    case 'string':
    case 'enum':
      return z.string();
    case 'integer':
    case 'number':
      return z.number();
    case 'boolean':
      return z.boolean();
    case 'any':
      return z.unknown();
    case 'array':
      return z.array(lenientSchema(shape.items).nullable());
    case 'object': {
      const props: Record<string, z.ZodType> = {};
      for (const [k, v] of Object.entries(shape.properties)) {
        props[k] = mustHave.includes(k) ? lenientSchema(v) : lenientSchema(v).nullish();
      }
      return z.looseObject(props);
    }
  }
}

/**
 * A strict validator of the spec as written: required fields present, types and
 * enums exact, nullability as declared. Used by the simulator's own tests.
 */
export function strictSchema(shape: Shape): z.ZodType {
  const base = ((): z.ZodType => {
    switch (shape.kind) {
      case 'string':
        if (shape.format === 'date') return z.string().regex(/^\d{4}-\d{2}-\d{2}$/);
        if (shape.format === 'datetime') return z.string().refine((s) => !Number.isNaN(Date.parse(s)));
        return z.string();
      case 'enum':
        return z.enum(shape.values as [string, ...string[]]);
      case 'integer':
        return z.number().int();
      case 'number':
        return z.number();
      case 'boolean':
        return z.boolean();
      case 'any':
        return z.unknown();
      case 'array':
        return z.array(strictSchema(shape.items));
      case 'object': {
        const props: Record<string, z.ZodType> = {};
        for (const [k, v] of Object.entries(shape.properties)) {
          props[k] = shape.required.includes(k) ? strictSchema(v) : strictSchema(v).optional();
        }
        return z.looseObject(props);
      }
    }
  })();
  return shape.nullable ? base.nullable() : base;
}
