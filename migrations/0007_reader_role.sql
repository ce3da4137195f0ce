-- oura_reader: read-only access for partner backends (README, "For partners").
-- It reads the data tables and oura.connected_users (the users without their
-- token ciphertexts); never oura.users itself, the webhook inbox or events, or
-- the backfill bookkeeping. A role without login or password: the operator
-- creates a login role and grants oura_reader to it. Creating a role needs
-- CREATEROLE; without it the migration warns and goes on (an operator with
-- the privilege runs this file's statements later).
CREATE OR REPLACE VIEW "oura"."connected_users" AS
  SELECT "id", "status", "status_reason", "scopes", "personal_info", "connected_at", "updated_at",
         "last_webhook_at", "last_fetch_at", "reconciled_at", "series_refreshed_at", "series_latest_at"
  FROM "oura"."users";--> statement-breakpoint
COMMENT ON VIEW "oura"."connected_users" IS 'Connected Oura users (oura.users without token columns): what partner backends and oura_reader read.';--> statement-breakpoint
DO $$
DECLARE
  t text;
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'oura_reader') THEN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = current_user AND (rolcreaterole OR rolsuper)) THEN
      RAISE WARNING 'role oura_reader not created: % lacks CREATEROLE (see README, "For partners")', current_user;
      RETURN;
    END IF;
    BEGIN
      CREATE ROLE oura_reader NOLOGIN;
    EXCEPTION WHEN duplicate_object OR unique_violation THEN
      NULL; -- another database's migration made it meanwhile
    END;
  END IF;
  EXECUTE 'GRANT USAGE ON SCHEMA oura TO oura_reader';
  FOREACH t IN ARRAY ARRAY[
    'daily_activity', 'daily_cardiovascular_age', 'daily_readiness', 'daily_resilience', 'daily_sleep', 'daily_spo2',
    'daily_stress', 'enhanced_tag', 'rest_mode_period', 'ring_configuration', 'session', 'sleep', 'sleep_time', 'tag',
    'vo2_max', 'workout', 'heartrate', 'ring_battery_level', 'connected_users'
  ] LOOP
    EXECUTE format('GRANT SELECT ON oura.%I TO oura_reader', t);
  END LOOP;
END
$$;
