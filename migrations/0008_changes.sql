CREATE TABLE "oura"."changes" (
	"seq" bigint PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "oura"."changes_seq_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1),
	"txid" "xid8" DEFAULT pg_current_xact_id() NOT NULL,
	"user_id" text COLLATE "C" NOT NULL,
	"kind" text NOT NULL,
	"data_type" text,
	"op" text NOT NULL,
	"object_id" text,
	"day" date,
	"range_start" timestamp with time zone,
	"range_end" timestamp with time zone,
	"changed_at" timestamp with time zone DEFAULT statement_timestamp() NOT NULL,
	CONSTRAINT "changes_kind_check" CHECK ("oura"."changes"."kind" in ('document', 'timeseries', 'user')),
	CONSTRAINT "changes_op_check" CHECK (("oura"."changes"."kind" = 'document' and "oura"."changes"."op" in ('create', 'update', 'delete') and "oura"."changes"."object_id" is not null)
        or ("oura"."changes"."kind" = 'timeseries' and "oura"."changes"."op" = 'update' and "oura"."changes"."range_start" is not null)
        or ("oura"."changes"."kind" = 'user' and "oura"."changes"."op" in ('connected', 'backfill_completed', 'reauth_required', 'disconnected')))
);
--> statement-breakpoint
CREATE TABLE "oura"."partner_webhook_cursor" (
	"id" smallint PRIMARY KEY DEFAULT 1 NOT NULL,
	"txid" "xid8" NOT NULL,
	"seq" bigint NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "partner_webhook_cursor_one_row" CHECK ("oura"."partner_webhook_cursor"."id" = 1)
);
--> statement-breakpoint
CREATE TABLE "oura"."partner_webhook_deliveries" (
	"seq" bigint PRIMARY KEY NOT NULL,
	"user_id" text COLLATE "C" NOT NULL,
	"event_type" text NOT NULL,
	"data" jsonb NOT NULL,
	"occurred_at" timestamp with time zone NOT NULL,
	"status" text DEFAULT 'pending' NOT NULL,
	"attempts" integer DEFAULT 0 NOT NULL,
	"next_attempt_at" timestamp with time zone DEFAULT now() NOT NULL,
	"locked_until" timestamp with time zone,
	"last_status" integer,
	"last_error" text,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"finished_at" timestamp with time zone,
	CONSTRAINT "partner_webhook_deliveries_status_check" CHECK ("oura"."partner_webhook_deliveries"."status" in ('pending', 'delivered', 'dead'))
);
--> statement-breakpoint
CREATE INDEX "changes_cursor_idx" ON "oura"."changes" USING btree ("txid","seq");--> statement-breakpoint
CREATE INDEX "changes_user_idx" ON "oura"."changes" USING btree ("user_id","txid","seq");--> statement-breakpoint
CREATE INDEX "changes_changed_at_idx" ON "oura"."changes" USING brin ("changed_at");--> statement-breakpoint
CREATE INDEX "partner_webhook_deliveries_pending_idx" ON "oura"."partner_webhook_deliveries" USING btree ("user_id","seq") WHERE "oura"."partner_webhook_deliveries"."status" = 'pending';--> statement-breakpoint
CREATE INDEX "partner_webhook_deliveries_in_flight_idx" ON "oura"."partner_webhook_deliveries" USING btree ("user_id") WHERE "oura"."partner_webhook_deliveries"."status" = 'pending' and "oura"."partner_webhook_deliveries"."locked_until" is not null;--> statement-breakpoint
CREATE INDEX "partner_webhook_deliveries_backlog_idx" ON "oura"."partner_webhook_deliveries" USING btree ("seq") WHERE "oura"."partner_webhook_deliveries"."status" = 'pending';--> statement-breakpoint
CREATE INDEX "partner_webhook_deliveries_finished_idx" ON "oura"."partner_webhook_deliveries" USING btree ("status","finished_at") WHERE "oura"."partner_webhook_deliveries"."status" <> 'pending';--> statement-breakpoint
CREATE INDEX "partner_webhook_deliveries_user_idx" ON "oura"."partner_webhook_deliveries" USING btree ("user_id");--> statement-breakpoint
-- Partner backends read the change feed (README, "For partners"); the outbound
-- webhook bookkeeping stays ours. Skipped, as in 0007, where oura_reader could
-- not be created.
DO $$
BEGIN
  IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'oura_reader') THEN
    EXECUTE 'GRANT SELECT ON oura.changes TO oura_reader';
  END IF;
END
$$;
