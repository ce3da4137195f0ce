-- A nullable column without a default: a catalog change only, no table rewrite.
ALTER TABLE "oura"."webhook_events" ADD COLUMN "recheck_at" timestamp with time zone;