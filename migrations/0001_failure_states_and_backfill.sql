CREATE TABLE "oura"."backfill_progress" (
	"user_id" text NOT NULL,
	"data_type" text NOT NULL,
	"status" text NOT NULL,
	"range_start" timestamp with time zone NOT NULL,
	"range_end" timestamp with time zone NOT NULL,
	"cursor" timestamp with time zone NOT NULL,
	"windows_done" integer DEFAULT 0 NOT NULL,
	"windows_total" integer NOT NULL,
	"items" integer DEFAULT 0 NOT NULL,
	"requests" integer DEFAULT 0 NOT NULL,
	"error" text,
	"started_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	"finished_at" timestamp with time zone,
	CONSTRAINT "backfill_progress_user_id_data_type_pk" PRIMARY KEY("user_id","data_type")
);
--> statement-breakpoint
ALTER TABLE "oura"."webhook_events" DROP CONSTRAINT "webhook_events_status_check";--> statement-breakpoint
ALTER TABLE "oura"."users" ADD COLUMN "access_error" text;--> statement-breakpoint
ALTER TABLE "oura"."users" ADD COLUMN "access_error_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "oura"."backfill_progress" ADD CONSTRAINT "backfill_progress_user_id_users_id_fk" FOREIGN KEY ("user_id") REFERENCES "oura"."users"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "oura"."webhook_events" ADD CONSTRAINT "webhook_events_status_check" CHECK ("oura"."webhook_events"."status" in ('queued', 'parked', 'done', 'ignored', 'failed'));