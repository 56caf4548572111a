-- spool on PostgreSQL, schema version 3: features on top of version 1.
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
