-- Transactional enqueue with spool's PostgreSQL store (docs/postgres.md).
-- Run against the database spoold was started on (--store), e.g.
--   psql postgres://app@db/jobs -f examples/postgres/enqueue.sql
-- The order row and its receipt job commit together or not at all: a worker
-- never sees a job for an order that was rolled back.

CREATE TABLE IF NOT EXISTS orders (id bigint PRIMARY KEY, email text NOT NULL);

BEGIN;
INSERT INTO orders (id, email) VALUES (42, 'ada@example.com')
    ON CONFLICT (id) DO NOTHING;
-- Faktory's job shape; jobtype and args are required, the rest defaults.
SELECT spool.push(jsonb_build_object(
    'jobtype', 'SendReceipt',
    'args', jsonb_build_array(42),
    'queue', 'mail',
    'retry', 5));
COMMIT;

-- A job for later: "at" schedules it (RFC 3339).
SELECT spool.push(jsonb_build_object(
    'jobtype', 'SendSurvey',
    'args', jsonb_build_array(42),
    'queue', 'mail',
    'at', to_char(now() AT TIME ZONE 'UTC' + interval '1 day', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')));
