-- spool on PostgreSQL, schema version 1: jobs, queues, counters, and the
-- functions spoold and applications call. Applied once by spoold at start
-- (see src/store/pg_schema.h); never edited once released.
--
-- A job is one row of spool.jobs in exactly one state:
--   scheduled  run_at = when it is due
--   enqueued   run_at = when it was enqueued; seq orders its queue (FIFO)
--   working    reserved_by / reserved_until / lease describe the reservation
--   retry      run_at = when the next attempt is due
--   dead       run_at = when it died
-- payload is the job as FETCH returns it.

CREATE SEQUENCE spool.job_seq;
CREATE SEQUENCE spool.lease_seq;

CREATE TABLE spool.jobs (
    jid            text PRIMARY KEY,
    queue          text NOT NULL,
    jobtype        text NOT NULL,
    state          text NOT NULL
                   CHECK (state IN ('scheduled', 'enqueued', 'working', 'retry', 'dead')),
    seq            bigint NOT NULL DEFAULT nextval('spool.job_seq'),
    run_at         timestamptz NOT NULL,
    payload        jsonb NOT NULL,
    reserve_for_s  integer NOT NULL DEFAULT 1800,
    reserved_by    text,
    reserved_until timestamptz,
    lease          bigint,
    expires_at     timestamptz
);

CREATE INDEX jobs_fifo ON spool.jobs (queue, seq) WHERE state = 'enqueued';
CREATE INDEX jobs_due ON spool.jobs (run_at) WHERE state IN ('scheduled', 'retry');
CREATE INDEX jobs_reserved ON spool.jobs (reserved_until) WHERE state = 'working';
CREATE INDEX jobs_dead ON spool.jobs (run_at) WHERE state = 'dead';
-- Expiring jobs are few: FETCH finds the lapsed ones without reading the queue.
CREATE INDEX jobs_expiring ON spool.jobs (queue, expires_at)
    WHERE state = 'enqueued' AND expires_at IS NOT NULL;

-- Every queue a job was pushed to (until QUEUE REMOVE), and whether it is paused.
CREATE TABLE spool.queues (
    name   text PRIMARY KEY,
    paused boolean NOT NULL DEFAULT false
);

-- Processed and failed counts per UTC day, spread over 16 rows a day so that
-- concurrent ACKs seldom wait on one row's lock.
CREATE TABLE spool.stats (
    day       date NOT NULL,
    shard     smallint NOT NULL,
    processed bigint NOT NULL DEFAULT 0,
    failed    bigint NOT NULL DEFAULT 0,
    expired   bigint NOT NULL DEFAULT 0, -- discarded at FETCH: custom.expires_at had passed
    PRIMARY KEY (day, shard)
);

-- Timestamps as Faktory writes them: RFC 3339, UTC, microseconds.
CREATE FUNCTION spool.ts(t timestamptz) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
$$;

-- RFC 3339 date-times only: PostgreSQL itself would also take "tomorrow",
-- "epoch" or a bare date, which no job should carry by accident.
CREATE FUNCTION spool.rfc3339() RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT '^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})$'
$$;

CREATE FUNCTION spool.count_stat(p_processed bigint, p_failed bigint) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO spool.stats AS s (day, shard, processed, failed)
    VALUES ((now() AT TIME ZONE 'UTC')::date, floor(random() * 16)::smallint, p_processed, p_failed)
    ON CONFLICT (day, shard) DO UPDATE
        SET processed = s.processed + excluded.processed, failed = s.failed + excluded.failed
$$;

-- spool.push(job): enqueues one job, in the caller's transaction. The job is
-- a JSON object in Faktory's shape: jobtype (required), args (an array,
-- required), jid (generated when absent), queue ("default"), retry (25),
-- reserve_for (1800 s), at (RFC 3339: schedules it), custom.expires_at.
-- Workers see the job only once the transaction commits; the NOTIFY that
-- wakes blocked fetchers is delivered at commit too. Returns the jid.
-- Pushing a jid again with the same jobtype, queue and args changes nothing
-- and returns the jid (a retried push); with different ones it is an error.
-- expires_at, when given, wins over custom.expires_at (spoold passes the
-- expiry it read from custom.expires_at or custom.expires_in).
CREATE FUNCTION spool.push(job jsonb, expires_at timestamptz DEFAULT NULL) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    v_now     timestamptz := clock_timestamp();
    v_jid     text;
    v_queue   text;
    v_retry   integer;
    v_reserve integer;
    v_at      timestamptz;
    v_expires timestamptz;
    v_state   text := 'enqueued';
    v_old     jsonb;
BEGIN
    IF job IS NULL OR jsonb_typeof(job) <> 'object' THEN
        RAISE EXCEPTION 'spool.push: a job must be a JSON object' USING ERRCODE = '22023';
    END IF;
    IF jsonb_typeof(job -> 'jobtype') IS DISTINCT FROM 'string' OR job ->> 'jobtype' = '' THEN
        RAISE EXCEPTION 'spool.push: jobtype must be a non-empty string' USING ERRCODE = '22023';
    END IF;
    IF jsonb_typeof(job -> 'args') IS DISTINCT FROM 'array' THEN
        RAISE EXCEPTION 'spool.push: args must be an array' USING ERRCODE = '22023';
    END IF;
    IF job ? 'jid' THEN
        IF jsonb_typeof(job -> 'jid') <> 'string' OR length(job ->> 'jid') < 8 THEN
            RAISE EXCEPTION 'spool.push: jid must be a string of at least 8 characters'
                USING ERRCODE = '22023';
        END IF;
        v_jid := job ->> 'jid';
    ELSE
        v_jid := replace(gen_random_uuid()::text, '-', '');
    END IF;
    IF jsonb_typeof(job -> 'queue') = 'string' AND job ->> 'queue' <> '' THEN
        v_queue := job ->> 'queue';
    ELSIF job ? 'queue' AND jsonb_typeof(job -> 'queue') NOT IN ('string', 'null') THEN
        RAISE EXCEPTION 'spool.push: queue must be a string' USING ERRCODE = '22023';
    ELSE
        v_queue := 'default';
    END IF;
    IF v_queue !~ '^[a-zA-Z0-9._-]+$' THEN
        RAISE EXCEPTION 'spool.push: queue name % is not valid: use letters, digits, ".", "_" and "-"',
            v_queue USING ERRCODE = '22023';
    END IF;
    IF jsonb_typeof(job -> 'retry') = 'number' THEN
        v_retry := (job ->> 'retry')::numeric::integer;
    ELSE
        v_retry := 25;
    END IF;
    IF jsonb_typeof(job -> 'reserve_for') = 'number' AND (job ->> 'reserve_for')::numeric > 0 THEN
        v_reserve := least(greatest((job ->> 'reserve_for')::numeric::integer, 60), 86400);
    ELSE
        v_reserve := 1800;
    END IF;
    IF jsonb_typeof(job -> 'at') = 'string' AND job ->> 'at' <> '' THEN
        BEGIN
            IF job ->> 'at' !~ spool.rfc3339() THEN
                RAISE EXCEPTION 'not RFC 3339';
            END IF;
            v_at := (job ->> 'at')::timestamptz;
        EXCEPTION WHEN others THEN
            RAISE EXCEPTION 'spool.push: at must be an RFC 3339 time, not %', job ->> 'at'
                USING ERRCODE = '22007';
        END;
        IF v_at > v_now THEN
            v_state := 'scheduled';
        END IF;
    END IF;
    v_expires := push.expires_at;
    IF v_expires IS NULL AND jsonb_typeof(job -> 'custom' -> 'expires_at') = 'string' THEN
        BEGIN
            IF job -> 'custom' ->> 'expires_at' !~ spool.rfc3339() THEN
                RAISE EXCEPTION 'not RFC 3339';
            END IF;
            v_expires := (job -> 'custom' ->> 'expires_at')::timestamptz;
        EXCEPTION WHEN others THEN
            RAISE EXCEPTION 'spool.push: custom.expires_at must be an RFC 3339 time, not %',
                job -> 'custom' ->> 'expires_at' USING ERRCODE = '22007';
        END;
    END IF;

    job := job || jsonb_build_object('jid', v_jid, 'queue', v_queue, 'retry', v_retry);
    IF NOT job ? 'created_at' THEN
        job := job || jsonb_build_object('created_at', spool.ts(v_now));
    END IF;
    IF v_state = 'enqueued' THEN
        job := job || jsonb_build_object('enqueued_at', spool.ts(v_now));
    END IF;

    INSERT INTO spool.jobs (jid, queue, jobtype, state, run_at, payload, reserve_for_s, expires_at)
    VALUES (v_jid, v_queue, job ->> 'jobtype', v_state, coalesce(v_at, v_now), job, v_reserve, v_expires)
    ON CONFLICT (jid) DO NOTHING;
    IF NOT FOUND THEN
        SELECT payload INTO v_old FROM spool.jobs WHERE jid = v_jid;
        IF v_old IS NULL OR v_old -> 'jobtype' IS DISTINCT FROM job -> 'jobtype'
           OR v_old -> 'queue' IS DISTINCT FROM job -> 'queue'
           OR v_old -> 'args' IS DISTINCT FROM job -> 'args' THEN
            RAISE EXCEPTION 'jid % is already in use by a different job', v_jid
                USING ERRCODE = '23505';
        END IF;
        RETURN v_jid;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM spool.queues WHERE name = v_queue) THEN
        INSERT INTO spool.queues (name) VALUES (v_queue) ON CONFLICT DO NOTHING;
    END IF;
    IF v_state = 'enqueued' THEN
        PERFORM pg_notify('spool_push', v_queue);
    END IF;
    RETURN v_jid;
END
$$;

-- Reserves up to p_max jobs for worker p_wid, taking queues in the order
-- given (the first non-empty, unpaused queue first). Rows other servers are
-- claiming are skipped, not waited for. Jobs past custom.expires_at are
-- never handed out: up to 100 of them per queue and call are deleted (and
-- counted), and any beyond that are skipped, for later calls to delete.
CREATE FUNCTION spool.fetch(p_queues text[], p_wid text, p_max integer DEFAULT 1)
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

-- Acknowledges jobs: the reserved ones among p_jids are deleted and counted
-- as processed. Returns how many were reserved. An ACK for a job no longer
-- reserved is not an error (workers resend ACKs after a lost reply).
CREATE FUNCTION spool.ack(p_jids text[]) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    v_n integer;
BEGIN
    DELETE FROM spool.jobs WHERE jid = ANY (p_jids) AND state = 'working';
    GET DIAGNOSTICS v_n = ROW_COUNT;
    IF v_n > 0 THEN
        PERFORM spool.count_stat(v_n, 0);
    END IF;
    RETURN v_n;
END
$$;

-- Keeps the dead set at p_max jobs (0 = no cap), dropping the oldest.
CREATE FUNCTION spool.trim_dead(p_max bigint) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    v_n integer := 0;
BEGIN
    IF p_max > 0 THEN
        DELETE FROM spool.jobs WHERE jid IN (
            SELECT jid FROM spool.jobs WHERE state = 'dead'
             ORDER BY run_at DESC, seq DESC OFFSET p_max);
        GET DIAGNOSTICS v_n = ROW_COUNT;
    END IF;
    RETURN v_n;
END
$$;

-- Stores a failure decided by spoold (the retry policy lives in spoold, one
-- copy for both stores): the job, still under reservation p_lease, moves to
-- p_state ('retry' at p_run_at, 'dead', or 'discard' to delete it) with its
-- new payload; a job going dead may push the oldest out (p_dead_max).
-- Returns false when the reservation is no longer p_lease (the job was
-- acknowledged, failed or expired meanwhile).
CREATE FUNCTION spool.fail(p_jid text, p_lease bigint, p_state text, p_run_at timestamptz,
                           p_payload jsonb, p_dead_max bigint DEFAULT 0) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    IF p_state = 'discard' THEN
        DELETE FROM spool.jobs WHERE jid = p_jid AND state = 'working' AND lease = p_lease;
    ELSE
        UPDATE spool.jobs
           SET state = p_state, run_at = coalesce(p_run_at, clock_timestamp()), payload = p_payload,
               reserved_by = NULL, reserved_until = NULL, lease = NULL
         WHERE jid = p_jid AND state = 'working' AND lease = p_lease;
    END IF;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    PERFORM spool.count_stat(1, 1); -- as Faktory: a failure is also a processed job
    IF p_state = 'dead' THEN
        PERFORM spool.trim_dead(p_dead_max);
    END IF;
    RETURN true;
END
$$;

-- Moves due scheduled and retry jobs into their queues (at most p_max per
-- call) and wakes the fetchers of each queue that gained jobs. Returns the
-- number moved.
CREATE FUNCTION spool.promote(p_max integer DEFAULT 1000) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    v_now   timestamptz := clock_timestamp();
    v_q     text;
    v_n     bigint;
    v_total integer := 0;
BEGIN
    FOR v_q, v_n IN
        WITH due AS (
            SELECT jid FROM spool.jobs
             WHERE state IN ('scheduled', 'retry') AND run_at <= v_now
             ORDER BY run_at LIMIT p_max FOR UPDATE SKIP LOCKED),
        moved AS (
            UPDATE spool.jobs j
               SET state = 'enqueued', seq = nextval('spool.job_seq'), run_at = v_now,
                   payload = j.payload || jsonb_build_object('enqueued_at', spool.ts(v_now))
              FROM due WHERE j.jid = due.jid
            RETURNING j.queue)
        SELECT queue, count(*) FROM moved GROUP BY queue
    LOOP
        PERFORM pg_notify('spool_push', v_q);
        v_total := v_total + v_n;
    END LOOP;
    RETURN v_total;
END
$$;

-- The dead set is bounded: jobs dead longer than p_ttl go, then the oldest
-- beyond p_max (0 = no cap). Returns the number deleted.
CREATE FUNCTION spool.prune_dead(p_ttl interval, p_max bigint) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    v_n integer;
BEGIN
    DELETE FROM spool.jobs WHERE state = 'dead' AND run_at < clock_timestamp() - p_ttl;
    GET DIAGNOSTICS v_n = ROW_COUNT;
    RETURN v_n + spool.trim_dead(p_max);
END
$$;

-- What INFO and the API report: queue sizes, set sizes, totals, paused queues.
CREATE FUNCTION spool.info() RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'queues', (SELECT coalesce(jsonb_object_agg(k.name, coalesce(q.n, 0)), '{}'::jsonb)
                     FROM spool.queues k
                     LEFT JOIN (SELECT queue, count(*) AS n FROM spool.jobs
                                 WHERE state = 'enqueued' GROUP BY queue) q ON q.queue = k.name),
        'scheduled', (SELECT count(*) FROM spool.jobs WHERE state = 'scheduled'),
        'retries', (SELECT count(*) FROM spool.jobs WHERE state = 'retry'),
        'dead', (SELECT count(*) FROM spool.jobs WHERE state = 'dead'),
        'working', (SELECT count(*) FROM spool.jobs WHERE state = 'working'),
        'processed', (SELECT coalesce(sum(processed), 0) FROM spool.stats),
        'failed', (SELECT coalesce(sum(failed), 0) FROM spool.stats),
        'expired', (SELECT coalesce(sum(expired), 0) FROM spool.stats),
        'paused', (SELECT coalesce(jsonb_agg(name ORDER BY name), '[]'::jsonb)
                     FROM spool.queues WHERE paused),
        'latency', (SELECT coalesce(jsonb_object_agg(queue, l), '{}'::jsonb)
                      FROM (SELECT queue, extract(epoch FROM clock_timestamp() - min(run_at))::float8 AS l
                              FROM spool.jobs WHERE state = 'enqueued' GROUP BY queue) q))
$$;

-- The API's queue objects, by name: every queue holding waiting jobs or
-- listed in spool.queues (paused, or paused once); p_name picks one.
CREATE FUNCTION spool.queues_info(p_name text DEFAULT NULL) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT coalesce(jsonb_agg(jsonb_build_object(
               'name', n.name,
               'size', coalesce(w.size, 0),
               'latency', coalesce(round(w.latency::numeric, 3), 0),
               'paused', coalesce(q.paused, false),
               'throttle', NULL) ORDER BY n.name), '[]'::jsonb)
      FROM (SELECT DISTINCT queue AS name FROM spool.jobs
             WHERE state = 'enqueued' AND (p_name IS NULL OR queue = p_name)
            UNION SELECT name FROM spool.queues WHERE p_name IS NULL OR name = p_name) n
      LEFT JOIN (SELECT queue, count(*) AS size,
                        extract(epoch FROM clock_timestamp() - min(run_at))::float8 AS latency
                   FROM spool.jobs WHERE state = 'enqueued' GROUP BY queue) w ON w.queue = n.name
      LEFT JOIN spool.queues q ON q.name = n.name
$$;

-- The API's job object: state, where the job is, and the job itself; NULL
-- when no job has that jid.
CREATE FUNCTION spool.job_info(p_jid text) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object('jid', j.jid, 'state', j.state, 'queue', j.queue)
           || CASE j.state
                WHEN 'scheduled' THEN jsonb_build_object('at', spool.ts(j.run_at))
                WHEN 'retry' THEN jsonb_build_object('retry_at', spool.ts(j.run_at))
                WHEN 'dead' THEN jsonb_build_object('expires_at', spool.ts(j.run_at + interval '180 days'))
                WHEN 'enqueued' THEN jsonb_build_object('enqueued_at', spool.ts(j.run_at))
                ELSE jsonb_build_object(
                    'wid', j.reserved_by,
                    'reserved_at', spool.ts(j.reserved_until - make_interval(secs => j.reserve_for_s)),
                    'reservation_expires_at', spool.ts(j.reserved_until))
              END
           || jsonb_build_object('job', j.payload)
      FROM spool.jobs j WHERE j.jid = p_jid
$$;

-- Processed and failed per UTC day for the last p_days days, oldest first.
CREATE FUNCTION spool.history(p_days integer) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object('days', jsonb_agg(jsonb_build_object(
               'date', to_char(d.day, 'YYYY-MM-DD'),
               'processed', coalesce(s.processed, 0),
               'failed', coalesce(s.failed, 0)) ORDER BY d.day))
      FROM (SELECT ((now() AT TIME ZONE 'UTC')::date - g) AS day
              FROM generate_series(0, p_days - 1) g) d
      LEFT JOIN (SELECT day, sum(processed) AS processed, sum(failed) AS failed
                   FROM spool.stats GROUP BY day) s ON s.day = d.day
$$;

-- PUSHB (and concurrent PUSHes that spoold coalesces into one statement):
-- pushes each job of a JSON array on its own, one failing job undoing none
-- of the others, and returns the refused ones: their position in the array
-- (from 1), jid, SQLSTATE and message.
CREATE FUNCTION spool.push_each(p_jobs jsonb, p_expires jsonb DEFAULT NULL)
RETURNS TABLE (pos bigint, pushed_jid text, error_code text, error text)
LANGUAGE plpgsql AS $$
DECLARE
    v_job jsonb;
    v_pos bigint;
BEGIN
    FOR v_job, v_pos IN SELECT value, ordinality FROM jsonb_array_elements(p_jobs) WITH ORDINALITY LOOP
        BEGIN
            PERFORM spool.push(v_job, (p_expires ->> (v_pos - 1)::integer)::timestamptz);
        EXCEPTION WHEN others THEN
            pos := v_pos;
            pushed_jid := v_job ->> 'jid';
            error_code := SQLSTATE;
            error := SQLERRM;
            RETURN NEXT;
        END;
    END LOOP;
END
$$;

-- QUEUE PAUSE / RESUME: of the named queues ("*": all), those known: holding
-- jobs, or listed already. As in Faktory, a queue cannot be paused ahead.
CREATE FUNCTION spool.queue_pause(p_names text[], p_paused boolean) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO spool.queues AS q (name, paused)
    SELECT n, p_paused FROM (
        SELECT DISTINCT queue AS n FROM spool.jobs
         WHERE queue = ANY (p_names) OR '*' = ANY (p_names)
        UNION SELECT name FROM spool.queues WHERE name = ANY (p_names) OR '*' = ANY (p_names)) names
    ON CONFLICT (name) DO UPDATE SET paused = excluded.paused
$$;

-- QUEUE REMOVE: drops the queues' waiting jobs ("*": every queue).
CREATE FUNCTION spool.queue_remove(p_names text[]) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    v_n integer;
BEGIN
    DELETE FROM spool.jobs
     WHERE state = 'enqueued' AND (queue = ANY (p_names) OR '*' = ANY (p_names));
    GET DIAGNOSTICS v_n = ROW_COUNT;
    DELETE FROM spool.queues WHERE name = ANY (p_names) OR '*' = ANY (p_names);
    RETURN v_n;
END
$$;

-- QUEUE LATENCY: seconds the oldest waiting job of each queue has waited (0 when empty).
CREATE FUNCTION spool.queue_latency(p_names text[]) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT coalesce(jsonb_object_agg(n, coalesce(
        (SELECT extract(epoch FROM clock_timestamp() - min(run_at))::float8
           FROM spool.jobs WHERE state = 'enqueued' AND queue = n), 0)), '{}'::jsonb)
      FROM (SELECT DISTINCT unnest(p_names) AS n) names
$$;

-- Listing a set ('scheduled', 'retry', 'dead', 'working') or a queue's
-- waiting jobs, in the order the journal store lists them (by time, then
-- arrival; a queue FIFO). Filters: p_jids (exact, alone when given), else
-- p_jobtype; p_limit NULL returns every match (spoold then filters by glob).
-- The first column is the number of matches, on every row; with no row in
-- the page, one row carries it with the other columns NULL.
CREATE FUNCTION spool.list(p_state text, p_queue text, p_jids text[], p_jobtype text,
                           p_offset bigint, p_limit bigint)
RETURNS TABLE (total bigint, payload text, at_us bigint, wid text, reserved_at_us bigint)
LANGUAGE sql STABLE AS $$
    WITH m AS (
        SELECT j.* FROM spool.jobs j
         WHERE j.state = p_state
           AND (p_queue IS NULL OR j.queue = p_queue)
           AND (CASE WHEN p_jids IS NOT NULL THEN j.jid = ANY (p_jids)
                     ELSE p_jobtype IS NULL OR j.jobtype = p_jobtype END)),
    n AS (SELECT count(*) AS total FROM m),
    page AS (
        SELECT m.payload::text AS payload,
               (extract(epoch FROM CASE WHEN m.state = 'working' THEN m.reserved_until
                                        ELSE m.run_at END) * 1000000)::bigint AS at_us,
               m.reserved_by AS wid,
               (extract(epoch FROM m.reserved_until - make_interval(secs => m.reserve_for_s))
                   * 1000000)::bigint AS reserved_at_us,
               CASE WHEN p_state = 'enqueued' THEN m.seq ELSE 0 END AS k1,
               CASE WHEN p_state = 'enqueued' THEN NULL
                    WHEN m.state = 'working' THEN m.reserved_until ELSE m.run_at END AS k2,
               m.seq AS k3
          FROM m ORDER BY k1, k2, k3 OFFSET p_offset LIMIT p_limit)
    SELECT n.total, page.payload, page.at_us, page.wid, page.reserved_at_us
      FROM n LEFT JOIN page ON true
     ORDER BY page.k1, page.k2, page.k3
$$;

-- MUTATE and the API's set actions: 'clear' and 'discard' delete, 'kill'
-- moves to the dead set, 'requeue' enqueues now (waking fetchers). Same
-- filters as spool.list (p_jids NULL and p_jobtype NULL: the whole set).
-- Returns the number of jobs changed.
CREATE FUNCTION spool.mutate(p_cmd text, p_state text, p_jids text[], p_jobtype text,
                             p_dead_max bigint DEFAULT 0)
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    v_now timestamptz := clock_timestamp();
    v_n   integer := 0;
    v_q   text;
    v_c   bigint;
BEGIN
    IF p_cmd IN ('clear', 'discard') THEN
        DELETE FROM spool.jobs j
         WHERE j.state = p_state
           AND (CASE WHEN p_jids IS NOT NULL THEN j.jid = ANY (p_jids)
                     ELSE p_jobtype IS NULL OR j.jobtype = p_jobtype END);
        GET DIAGNOSTICS v_n = ROW_COUNT;
    ELSIF p_cmd = 'kill' THEN
        UPDATE spool.jobs j SET state = 'dead', run_at = v_now
         WHERE j.state = p_state
           AND (CASE WHEN p_jids IS NOT NULL THEN j.jid = ANY (p_jids)
                     ELSE p_jobtype IS NULL OR j.jobtype = p_jobtype END);
        GET DIAGNOSTICS v_n = ROW_COUNT;
        PERFORM spool.trim_dead(p_dead_max);
    ELSIF p_cmd = 'requeue' THEN
        FOR v_q, v_c IN
            WITH moved AS (
                UPDATE spool.jobs j
                   SET state = 'enqueued', run_at = v_now, seq = nextval('spool.job_seq'),
                       payload = j.payload || jsonb_build_object('enqueued_at', spool.ts(v_now))
                 WHERE j.state = p_state
                   AND (CASE WHEN p_jids IS NOT NULL THEN j.jid = ANY (p_jids)
                             ELSE p_jobtype IS NULL OR j.jobtype = p_jobtype END)
                RETURNING j.queue)
            SELECT queue, count(*) FROM moved GROUP BY queue
        LOOP
            PERFORM pg_notify('spool_push', v_q);
            v_n := v_n + v_c;
        END LOOP;
    ELSE
        RAISE EXCEPTION 'spool.mutate: unknown command %', p_cmd USING ERRCODE = '22023';
    END IF;
    RETURN v_n;
END
$$;
