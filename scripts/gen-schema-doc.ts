/**
 * Writes docs/schema.md from a database the migrations make (dropped after):
 * every table, view and column of schema oura with its comment. Run after a
 * migration or `npm run gen:oura` changes them; `npm test` fails until then.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { createPool } from '../src/db/index.js';
import { repoRoot } from '../dev/service.js';
import { createDatabase, getServices } from '../dev/services.js';
import { describeSchema, renderSchemaDoc } from '../dev/schema-doc.js';

const services = await getServices();
const db = await createDatabase(services.adminDatabaseUrl, { label: 'schema_doc' });
const pool = createPool({ url: db.url, max: 1 });
try {
  const relations = await describeSchema(pool);
  writeFileSync(path.join(repoRoot, 'docs', 'schema.md'), renderSchemaDoc(relations));
  console.log(`docs/schema.md: ${relations.length} tables and views`);
} finally {
  await pool.end();
  await db.drop();
  await services.stop();
}
