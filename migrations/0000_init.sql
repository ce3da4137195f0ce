CREATE SCHEMA "oura";
--> statement-breakpoint
CREATE TABLE "oura"."heartrate" (
	"user_id" text NOT NULL,
	"timestamp" timestamp with time zone NOT NULL,
	"bpm" smallint NOT NULL,
	"source" text NOT NULL,
	CONSTRAINT "heartrate_user_id_timestamp_source_pk" PRIMARY KEY("user_id","timestamp","source")
);
--> statement-breakpoint
CREATE TABLE "oura"."ring_battery_level" (
	"user_id" text NOT NULL,
	"timestamp" timestamp with time zone NOT NULL,
	"level" smallint NOT NULL,
	"charging" boolean,
	"in_charger" boolean,
	CONSTRAINT "ring_battery_level_user_id_timestamp_pk" PRIMARY KEY("user_id","timestamp")
);
--> statement-breakpoint
CREATE TABLE "oura"."users" (
	"id" text PRIMARY KEY NOT NULL,
	"status" text DEFAULT 'active' NOT NULL,
	"status_reason" text,
	"access_token_enc" text,
	"refresh_token_enc" text,
	"token_expires_at" timestamp with time zone,
	"scopes" text,
	"personal_info" jsonb,
	"connected_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	"last_webhook_at" timestamp with time zone,
	"last_fetch_at" timestamp with time zone,
	CONSTRAINT "users_status_check" CHECK ("oura"."users"."status" in ('active', 'reauth_required', 'revoked'))
);
--> statement-breakpoint
CREATE TABLE "oura"."webhook_events" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"dedupe_key" text NOT NULL,
	"event_type" text NOT NULL,
	"data_type" text NOT NULL,
	"object_id" text NOT NULL,
	"user_id" text NOT NULL,
	"event_time" timestamp with time zone NOT NULL,
	"received_at" timestamp with time zone DEFAULT now() NOT NULL,
	"status" text NOT NULL,
	"outcome" text,
	"deliveries" integer DEFAULT 1 NOT NULL,
	"processed_at" timestamp with time zone,
	CONSTRAINT "webhook_events_dedupe_key_unique" UNIQUE("dedupe_key"),
	CONSTRAINT "webhook_events_status_check" CHECK ("oura"."webhook_events"."status" in ('queued', 'done', 'ignored', 'failed'))
);
--> statement-breakpoint
CREATE TABLE "oura"."daily_activity" (
	"id" text PRIMARY KEY NOT NULL,
	"user_id" text NOT NULL,
	"active_calories" bigint,
	"average_met_minutes" double precision,
	"class_5_min" text,
	"contributors" jsonb,
	"day" date,
	"equivalent_walking_distance" bigint,
	"high_activity_met_minutes" bigint,
	"high_activity_time" bigint,
	"inactivity_alerts" bigint,
	"low_activity_met_minutes" bigint,
	"low_activity_time" bigint,
	"medium_activity_met_minutes" bigint,
	"medium_activity_time" bigint,
	"met" jsonb,
	"meters_to_target" bigint,
	"non_wear_time" bigint,
	"resting_time" bigint,
	"score" bigint,
	"sedentary_met_minutes" bigint,
	"sedentary_time" bigint,
	"steps" bigint,
	"target_calories" bigint,
	"target_meters" bigint,
	"timestamp" timestamp with time zone,
	"total_calories" bigint,
	"document" jsonb NOT NULL,
	"fetched_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "oura"."daily_cardiovascular_age" (
	"id" text PRIMARY KEY NOT NULL,
	"user_id" text NOT NULL,
	"day" date,
	"pulse_wave_velocity" double precision,
	"vascular_age" bigint,
	"document" jsonb NOT NULL,
	"fetched_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "oura"."daily_readiness" (
	"id" text PRIMARY KEY NOT NULL,
	"user_id" text NOT NULL,
	"contributors" jsonb,
	"day" date,
	"score" bigint,
	"temperature_deviation" double precision,
	"temperature_trend_deviation" double precision,
	"timestamp" timestamp with time zone,
	"document" jsonb NOT NULL,
	"fetched_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "oura"."daily_resilience" (
	"id" text PRIMARY KEY NOT NULL,
	"user_id" text NOT NULL,
	"day" date,
	"contributors" jsonb,
	"level" text,
	"document" jsonb NOT NULL,
	"fetched_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "oura"."daily_sleep" (
	"id" text PRIMARY KEY NOT NULL,
	"user_id" text NOT NULL,
	"contributors" jsonb,
	"day" date,
	"score" bigint,
	"timestamp" timestamp with time zone,
	"document" jsonb NOT NULL,
	"fetched_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "oura"."daily_spo2" (
	"id" text PRIMARY KEY NOT NULL,
	"user_id" text NOT NULL,
	"breathing_disturbance_index" bigint,
	"day" date,
	"spo2_percentage" jsonb,
	"document" jsonb NOT NULL,
	"fetched_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "oura"."daily_stress" (
	"id" text PRIMARY KEY NOT NULL,
	"user_id" text NOT NULL,
	"day" date,
	"day_summary" text,
	"recovery_high" bigint,
	"stress_high" bigint,
	"document" jsonb NOT NULL,
	"fetched_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "oura"."enhanced_tag" (
	"id" text PRIMARY KEY NOT NULL,
	"user_id" text NOT NULL,
	"tag_type_code" text,
	"start_time" timestamp,
	"end_time" timestamp,
	"start_day" date,
	"end_day" date,
	"comment" text,
	"custom_name" text,
	"document" jsonb NOT NULL,
	"fetched_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "oura"."rest_mode_period" (
	"id" text PRIMARY KEY NOT NULL,
	"user_id" text NOT NULL,
	"end_day" date,
	"end_time" timestamp with time zone,
	"episodes" jsonb,
	"start_day" date,
	"start_time" timestamp with time zone,
	"document" jsonb NOT NULL,
	"fetched_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "oura"."ring_configuration" (
	"id" text PRIMARY KEY NOT NULL,
	"user_id" text NOT NULL,
	"color" text,
	"design" text,
	"firmware_version" text,
	"hardware_type" text,
	"set_up_at" timestamp with time zone,
	"size" bigint,
	"document" jsonb NOT NULL,
	"fetched_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "oura"."session" (
	"id" text PRIMARY KEY NOT NULL,
	"user_id" text NOT NULL,
	"day" date,
	"end_datetime" timestamp with time zone,
	"heart_rate" jsonb,
	"heart_rate_variability" jsonb,
	"mood" text,
	"motion_count" jsonb,
	"start_datetime" timestamp with time zone,
	"type" text,
	"document" jsonb NOT NULL,
	"fetched_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "oura"."sleep" (
	"id" text PRIMARY KEY NOT NULL,
	"user_id" text NOT NULL,
	"average_breath" double precision,
	"average_heart_rate" double precision,
	"average_hrv" bigint,
	"awake_time" bigint,
	"bedtime_end" timestamp with time zone,
	"bedtime_start" timestamp with time zone,
	"day" date,
	"deep_sleep_duration" bigint,
	"efficiency" bigint,
	"heart_rate" jsonb,
	"hrv" jsonb,
	"latency" bigint,
	"light_sleep_duration" bigint,
	"low_battery_alert" boolean,
	"lowest_heart_rate" bigint,
	"movement_30_sec" text,
	"period" bigint,
	"readiness" jsonb,
	"readiness_score_delta" bigint,
	"rem_sleep_duration" bigint,
	"restless_periods" bigint,
	"sleep_algorithm_version" text,
	"sleep_analysis_reason" text,
	"sleep_phase_30_sec" text,
	"sleep_phase_5_min" text,
	"sleep_score_delta" bigint,
	"time_in_bed" bigint,
	"total_sleep_duration" bigint,
	"type" text,
	"ring_id" text,
	"app_sleep_phase_5_min" text,
	"document" jsonb NOT NULL,
	"fetched_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "oura"."sleep_time" (
	"id" text PRIMARY KEY NOT NULL,
	"user_id" text NOT NULL,
	"day" date,
	"optimal_bedtime" jsonb,
	"recommendation" text,
	"status" text,
	"document" jsonb NOT NULL,
	"fetched_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "oura"."tag" (
	"id" text PRIMARY KEY NOT NULL,
	"user_id" text NOT NULL,
	"day" date,
	"text" text,
	"timestamp" timestamp,
	"tags" jsonb,
	"document" jsonb NOT NULL,
	"fetched_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "oura"."vo2_max" (
	"id" text PRIMARY KEY NOT NULL,
	"user_id" text NOT NULL,
	"day" date,
	"timestamp" timestamp with time zone,
	"vo2_max" bigint,
	"document" jsonb NOT NULL,
	"fetched_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "oura"."workout" (
	"id" text PRIMARY KEY NOT NULL,
	"user_id" text NOT NULL,
	"activity" text,
	"calories" double precision,
	"day" date,
	"distance" double precision,
	"end_datetime" timestamp with time zone,
	"intensity" text,
	"label" text,
	"source" text,
	"start_datetime" timestamp with time zone,
	"document" jsonb NOT NULL,
	"fetched_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
ALTER TABLE "oura"."heartrate" ADD CONSTRAINT "heartrate_user_id_users_id_fk" FOREIGN KEY ("user_id") REFERENCES "oura"."users"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "oura"."ring_battery_level" ADD CONSTRAINT "ring_battery_level_user_id_users_id_fk" FOREIGN KEY ("user_id") REFERENCES "oura"."users"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "oura"."daily_activity" ADD CONSTRAINT "daily_activity_user_id_users_id_fk" FOREIGN KEY ("user_id") REFERENCES "oura"."users"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "oura"."daily_cardiovascular_age" ADD CONSTRAINT "daily_cardiovascular_age_user_id_users_id_fk" FOREIGN KEY ("user_id") REFERENCES "oura"."users"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "oura"."daily_readiness" ADD CONSTRAINT "daily_readiness_user_id_users_id_fk" FOREIGN KEY ("user_id") REFERENCES "oura"."users"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "oura"."daily_resilience" ADD CONSTRAINT "daily_resilience_user_id_users_id_fk" FOREIGN KEY ("user_id") REFERENCES "oura"."users"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "oura"."daily_sleep" ADD CONSTRAINT "daily_sleep_user_id_users_id_fk" FOREIGN KEY ("user_id") REFERENCES "oura"."users"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "oura"."daily_spo2" ADD CONSTRAINT "daily_spo2_user_id_users_id_fk" FOREIGN KEY ("user_id") REFERENCES "oura"."users"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "oura"."daily_stress" ADD CONSTRAINT "daily_stress_user_id_users_id_fk" FOREIGN KEY ("user_id") REFERENCES "oura"."users"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "oura"."enhanced_tag" ADD CONSTRAINT "enhanced_tag_user_id_users_id_fk" FOREIGN KEY ("user_id") REFERENCES "oura"."users"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "oura"."rest_mode_period" ADD CONSTRAINT "rest_mode_period_user_id_users_id_fk" FOREIGN KEY ("user_id") REFERENCES "oura"."users"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "oura"."ring_configuration" ADD CONSTRAINT "ring_configuration_user_id_users_id_fk" FOREIGN KEY ("user_id") REFERENCES "oura"."users"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "oura"."session" ADD CONSTRAINT "session_user_id_users_id_fk" FOREIGN KEY ("user_id") REFERENCES "oura"."users"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "oura"."sleep" ADD CONSTRAINT "sleep_user_id_users_id_fk" FOREIGN KEY ("user_id") REFERENCES "oura"."users"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "oura"."sleep_time" ADD CONSTRAINT "sleep_time_user_id_users_id_fk" FOREIGN KEY ("user_id") REFERENCES "oura"."users"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "oura"."tag" ADD CONSTRAINT "tag_user_id_users_id_fk" FOREIGN KEY ("user_id") REFERENCES "oura"."users"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "oura"."vo2_max" ADD CONSTRAINT "vo2_max_user_id_users_id_fk" FOREIGN KEY ("user_id") REFERENCES "oura"."users"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "oura"."workout" ADD CONSTRAINT "workout_user_id_users_id_fk" FOREIGN KEY ("user_id") REFERENCES "oura"."users"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "webhook_events_pending_idx" ON "oura"."webhook_events" USING btree ("received_at") WHERE "oura"."webhook_events"."status" = 'queued';--> statement-breakpoint
CREATE INDEX "webhook_events_user_idx" ON "oura"."webhook_events" USING btree ("user_id","data_type","object_id");--> statement-breakpoint
CREATE INDEX "daily_activity_user_idx" ON "oura"."daily_activity" USING btree ("user_id","day");--> statement-breakpoint
CREATE INDEX "daily_cardiovascular_age_user_idx" ON "oura"."daily_cardiovascular_age" USING btree ("user_id","day");--> statement-breakpoint
CREATE INDEX "daily_readiness_user_idx" ON "oura"."daily_readiness" USING btree ("user_id","day");--> statement-breakpoint
CREATE INDEX "daily_resilience_user_idx" ON "oura"."daily_resilience" USING btree ("user_id","day");--> statement-breakpoint
CREATE INDEX "daily_sleep_user_idx" ON "oura"."daily_sleep" USING btree ("user_id","day");--> statement-breakpoint
CREATE INDEX "daily_spo2_user_idx" ON "oura"."daily_spo2" USING btree ("user_id","day");--> statement-breakpoint
CREATE INDEX "daily_stress_user_idx" ON "oura"."daily_stress" USING btree ("user_id","day");--> statement-breakpoint
CREATE INDEX "enhanced_tag_user_idx" ON "oura"."enhanced_tag" USING btree ("user_id","start_day");--> statement-breakpoint
CREATE INDEX "rest_mode_period_user_idx" ON "oura"."rest_mode_period" USING btree ("user_id","start_day");--> statement-breakpoint
CREATE INDEX "ring_configuration_user_idx" ON "oura"."ring_configuration" USING btree ("user_id");--> statement-breakpoint
CREATE INDEX "session_user_idx" ON "oura"."session" USING btree ("user_id","day");--> statement-breakpoint
CREATE INDEX "sleep_user_idx" ON "oura"."sleep" USING btree ("user_id","day");--> statement-breakpoint
CREATE INDEX "sleep_time_user_idx" ON "oura"."sleep_time" USING btree ("user_id","day");--> statement-breakpoint
CREATE INDEX "tag_user_idx" ON "oura"."tag" USING btree ("user_id","day");--> statement-breakpoint
CREATE INDEX "vo2_max_user_idx" ON "oura"."vo2_max" USING btree ("user_id","day");--> statement-breakpoint
CREATE INDEX "workout_user_idx" ON "oura"."workout" USING btree ("user_id","day");