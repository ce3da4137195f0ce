-- The webhook acceptance path's own table (an append with one index); the intake worker moves its rows to webhook_events. Ids from webhook_events' sequence.
CREATE TABLE "oura"."webhook_inbox" (
	"id" bigint PRIMARY KEY DEFAULT nextval('oura.webhook_events_id_seq') NOT NULL,
	"event_type" text NOT NULL,
	"data_type" text COLLATE "C" NOT NULL,
	"object_id" text COLLATE "C" NOT NULL,
	"user_id" text COLLATE "C" NOT NULL,
	"event_time" timestamp with time zone NOT NULL,
	"supported" boolean NOT NULL,
	"received_at" timestamp with time zone DEFAULT now() NOT NULL
);
