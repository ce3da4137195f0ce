-- Identifiers compared byte for byte (COLLATE "C"). No table rewrite (text stays text), but the indexes on these columns are rebuilt under an exclusive lock: on a large webhook_events, run it in a quiet moment.
DROP INDEX "oura"."webhook_events_user_idx";--> statement-breakpoint
ALTER TABLE "oura"."webhook_events" ALTER COLUMN "dedupe_key" SET DATA TYPE text COLLATE "C";--> statement-breakpoint
ALTER TABLE "oura"."webhook_events" ALTER COLUMN "data_type" SET DATA TYPE text COLLATE "C";--> statement-breakpoint
ALTER TABLE "oura"."webhook_events" ALTER COLUMN "object_id" SET DATA TYPE text COLLATE "C";--> statement-breakpoint
ALTER TABLE "oura"."webhook_events" ALTER COLUMN "user_id" SET DATA TYPE text COLLATE "C";--> statement-breakpoint
CREATE INDEX "webhook_events_user_idx" ON "oura"."webhook_events" USING btree ("user_id","data_type");