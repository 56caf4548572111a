-- spool on PostgreSQL, schema version 2: unique jobs, and FETCH skipping expired jobs.
-- Applied once by spoold at start; never edited once released.

-- FETCH no longer hands out a job past custom.expires_at. Version 1 deleted
-- at most 100 expired jobs per queue and call, then reserved the head of the
-- queue whatever its expiry, so a queue holding more than 100 expired jobs
-- gave one of them to a worker. Expired jobs left behind by the cap are
-- skipped here and deleted by later calls.
CREATE OR REPLACE FUNCTION spool.fetch(p_queues text[], p_wid text, p_max integer DEFAULT 1)
RETURNS TABLE (fetched_jid text, fetched_payload jsonb)
LANGUAGE plpgsql AS $$
DECLARE
    v_now  timestamptz := clock_timestamp();
    v_q    text;
    v_left integer := p_max;
    v_got  integer;
BEGIN
    -- A claim need not wait for its WAL flush: were PostgreSQL to crash before
    -- it reached disk, the job would simply be waiting in its queue again
    -- (at least once, as with a worker that dies holding it).
    PERFORM set_config('synchronous_commit', 'off', true);
    FOREACH v_q IN ARRAY p_queues LOOP
        EXIT WHEN v_left <= 0;
        CONTINUE WHEN EXISTS (SELECT 1 FROM spool.queues WHERE name = v_q AND paused);
        DELETE FROM spool.jobs j
         WHERE j.jid IN (SELECT c.jid FROM spool.jobs c
                          WHERE c.state = 'enqueued' AND c.expires_at IS NOT NULL
                            AND c.queue = v_q AND c.expires_at <= v_now
                          LIMIT 100 FOR UPDATE SKIP LOCKED);
        GET DIAGNOSTICS v_got = ROW_COUNT;
        IF v_got > 0 THEN
            INSERT INTO spool.stats AS s (day, shard, expired)
            VALUES ((now() AT TIME ZONE 'UTC')::date, floor(random() * 16)::smallint, v_got)
            ON CONFLICT (day, shard) DO UPDATE SET expired = s.expired + excluded.expired;
        END IF;
        RETURN QUERY
        UPDATE spool.jobs j
           SET state = 'working', reserved_by = p_wid,
               reserved_until = v_now + make_interval(secs => j.reserve_for_s),
               lease = nextval('spool.lease_seq')
          FROM (SELECT c.jid FROM spool.jobs c
                 WHERE c.state = 'enqueued' AND c.queue = v_q
                   AND (c.expires_at IS NULL OR c.expires_at > v_now)
                 ORDER BY c.seq LIMIT v_left FOR UPDATE SKIP LOCKED) picked
         WHERE j.jid = picked.jid
        RETURNING j.jid, j.payload;
        GET DIAGNOSTICS v_got = ROW_COUNT;
        v_left := v_left - v_got;
    END LOOP;
END
$$;

-- Unique jobs (custom.unique_for, custom.unique_until; docs/features.md).
-- One row per key = md5 of jobtype, queue and args as jsonb text, so every
-- server and spool.push builds the same key. A row only blocks while its job
-- is still alive (any state but dead: an ACK, FLUSH, removal or expiry
-- deletes the job and so frees the key) and expires_at is ahead; "start"
-- locks are deleted when the job is reserved. Held locks are found lazily at
-- the next push of the key, like the memory engine does.
CREATE TABLE spool.unique_locks (
    key         text PRIMARY KEY,
    jid         text NOT NULL,
    until_start boolean NOT NULL,
    expires_at  timestamptz NOT NULL
);
CREATE INDEX unique_locks_jid ON spool.unique_locks (jid);

-- Raised (SQLSTATE SP001) when another live job holds the key; the message
-- is the FWP error text, code first.
CREATE FUNCTION spool.unique_take() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_now   timestamptz := clock_timestamp();
    v_for   jsonb := NEW.payload -> 'custom' -> 'unique_for';
    v_until jsonb := NEW.payload -> 'custom' -> 'unique_until';
    v_secs  numeric;
    v_key   text;
    v_start boolean := false;
    v_lock  spool.unique_locks;
BEGIN
    IF v_for IS NULL OR jsonb_typeof(v_for) = 'null' THEN
        RETURN NEW;
    END IF;
    IF jsonb_typeof(v_for) <> 'number' OR (v_for #>> '{}')::numeric < 0 THEN
        RAISE EXCEPTION 'invalid custom.unique_for: must be a number of seconds, 0 or more'
            USING ERRCODE = '22023';
    END IF;
    v_secs := ceil((v_for #>> '{}')::numeric);
    IF v_secs = 0 THEN
        RETURN NEW;
    END IF;
    IF v_until IS NOT NULL AND jsonb_typeof(v_until) <> 'null' THEN
        IF v_until NOT IN ('"success"'::jsonb, '"start"'::jsonb) THEN
            RAISE EXCEPTION 'invalid custom.unique_until: must be "success" or "start"'
                USING ERRCODE = '22023';
        END IF;
        v_start := v_until = '"start"'::jsonb;
    END IF;
    v_key := md5(NEW.jobtype || E'\x1f' || NEW.queue || E'\x1f' || (NEW.payload -> 'args')::text);

    -- Waits for a concurrent push of the key to commit or roll back; each
    -- later statement then sees what it committed.
    INSERT INTO spool.unique_locks (key, jid, until_start, expires_at)
    VALUES (v_key, NEW.jid, v_start, v_now + make_interval(secs => v_secs))
    ON CONFLICT (key) DO NOTHING;
    IF FOUND THEN
        RETURN NEW;
    END IF;
    SELECT * INTO v_lock FROM spool.unique_locks WHERE key = v_key FOR UPDATE;
    IF v_lock.jid <> NEW.jid AND v_lock.expires_at > v_now
       AND EXISTS (SELECT 1 FROM spool.jobs WHERE jid = v_lock.jid AND state <> 'dead') THEN
        RAISE EXCEPTION 'NOTUNIQUE job % is already queued with the same jobtype, args and queue',
            v_lock.jid USING ERRCODE = 'SP001';
    END IF;
    IF v_lock.jid <> NEW.jid THEN
        UPDATE spool.unique_locks
           SET jid = NEW.jid, until_start = v_start, expires_at = v_now + make_interval(secs => v_secs)
         WHERE key = v_key;
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER jobs_unique_take BEFORE INSERT ON spool.jobs
    FOR EACH ROW WHEN (NEW.payload -> 'custom' ? 'unique_for')
    EXECUTE FUNCTION spool.unique_take();

CREATE FUNCTION spool.unique_start() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM spool.unique_locks WHERE jid = NEW.jid AND until_start;
    RETURN NULL;
END
$$;

CREATE TRIGGER jobs_unique_start AFTER UPDATE OF state ON spool.jobs
    FOR EACH ROW WHEN (NEW.state = 'working' AND OLD.state <> 'working'
                       AND NEW.payload -> 'custom' -> 'unique_until' = '"start"'::jsonb)
    EXECUTE FUNCTION spool.unique_start();

-- Locks whose job is gone, dead or past expires_at, removed by the leader.
CREATE FUNCTION spool.unique_prune() RETURNS integer
LANGUAGE sql AS $$
    WITH gone AS (
        DELETE FROM spool.unique_locks l
         WHERE l.expires_at <= clock_timestamp()
            OR NOT EXISTS (SELECT 1 FROM spool.jobs j WHERE j.jid = l.jid AND j.state <> 'dead')
        RETURNING 1)
    SELECT count(*)::integer FROM gone;
$$;
