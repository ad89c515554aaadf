-- $1 task id (bigint), $2 lease epoch (bigint), $3 worker id (text), $4 lease timeout in ms,
-- $5 the worker's target backend pid (int, or NULL), $6 now (timestamptz, the coordinator's clock)
-- One row when the lease is still this worker's: `held` true, extended if it runs, left as
-- it is if this worker at this epoch already completed the task (completion clears the
-- expiry; a first heartbeat can wait on the worker's own commit, and that is no lost lease).
-- No row when the task was granted to another. One UPDATE, so that a heartbeat that waited
-- on the commit re-checks the row as committed.
UPDATE __backfill.task t
SET lease_expires_at = CASE WHEN t.lease_expires_at IS NULL THEN NULL
                            ELSE $6::timestamptz + $4::bigint * interval '1 millisecond' END,
    lease_backend_pid = CASE WHEN t.lease_expires_at IS NULL THEN t.lease_backend_pid
                             ELSE $5::int END,
    lease_backend_start = CASE WHEN t.lease_expires_at IS NULL THEN t.lease_backend_start
                               ELSE (SELECT a.backend_start FROM pg_catalog.pg_stat_activity a
                                     WHERE a.pid = $5::int) END
WHERE t.task_id = $1::bigint AND t.lease_epoch = $2::bigint
  AND (t.lease_holder = $3::text OR t.done_by = $3::text)  -- done_by: completed at this epoch
RETURNING true AS held
