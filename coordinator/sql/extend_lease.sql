-- $1 task id (bigint), $2 lease epoch (bigint), $3 worker id (text), $4 lease timeout in ms,
-- $5 the worker's target backend pid (int, or NULL)
-- One row when the lease is still this worker's and was extended; none when it was lost.
UPDATE __backfill.task t
SET lease_expires_at = clock_timestamp() + $4::bigint * interval '1 millisecond',
    lease_backend_pid = $5::int,
    lease_backend_start = (SELECT a.backend_start FROM pg_catalog.pg_stat_activity a
                           WHERE a.pid = $5::int)
WHERE t.task_id = $1::bigint AND t.lease_epoch = $2::bigint AND t.lease_holder = $3::text
  AND t.lease_expires_at IS NOT NULL  -- completion and failure clear it: the lease is over
RETURNING t.task_id
