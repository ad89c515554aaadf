-- $1 now (timestamptz, the coordinator's clock)
-- Ends the target sessions of holders whose leases expired, so that a stopped worker's open
-- transaction (and the row locks it holds, in the target chunk and on its task) is rolled
-- back; the lease is given up afterwards (expire_leases.sql), which a lock held by that
-- transaction would otherwise hold back. Takes no row lock itself. The session is matched by
-- pid and start time, so a reused pid is never hit. One row per session ended.
SELECT t.task_id, format('%I.%I', t.chunk_schema, t.chunk_name), t.lease_holder,
       pg_catalog.pg_terminate_backend(a.pid)
FROM __backfill.task t
JOIN pg_catalog.pg_stat_activity a
  ON a.pid = t.lease_backend_pid AND a.backend_start = t.lease_backend_start
WHERE t.lease_backend_pid IS NOT NULL
  AND t.lease_expires_at < $1::timestamptz
