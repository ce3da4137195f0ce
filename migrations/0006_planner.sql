-- Planner state on users: nullable columns, and one NOT NULL column with a constant default
-- (a catalog change since PostgreSQL 11): no table rewrite, no long lock.
ALTER TABLE "oura"."users" ADD COLUMN "reconcile_runs" integer DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE "oura"."users" ADD COLUMN "series_refreshed_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "oura"."users" ADD COLUMN "series_latest_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "oura"."users" ADD COLUMN "trouble_at" timestamp with time zone;