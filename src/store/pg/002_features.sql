-- spool on PostgreSQL, schema version 2: unique jobs.
-- Applied once by spoold at start; never edited once released.

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
