-- $1 now (timestamptz, the coordinator's clock), $2 max attempts (int)
-- Leases on verifications that expired are given up: the task is free to be granted again (the
-- grant then bumps the epoch, which fences the old holder out). Run by the progress loop's
-- sweep, after end_expired_sessions.sql; the few held tasks are found through
-- task_verify_held_idx. A row still locked by a holder's transaction is left for a later
-- sweep.
-- An expired lease counts as a failed attempt, held back as a retryable failure is (see
-- record_failure.sql): its holder was killed, cut off or stopped answering, and a chunk that
-- kills every worker that takes it (one too large for a worker's memory) must not be granted
-- without end.
WITH expired AS (
  SELECT t.task_id, t.lease_holder
  FROM __backfill.task t
  WHERE t.lease_holder IS NOT NULL AND t.worked IS NOT NULL AND t.verified IS NULL
    AND t.lease_expires_at < $1::timestamptz
  FOR NO KEY UPDATE SKIP LOCKED)
UPDATE __backfill.task t
SET lease_holder = NULL, lease_backend_pid = NULL, lease_backend_start = NULL,
    attempts = t.attempts + 1,
    gave_up = t.attempts + 1 >= $2::int,
    last_error = format('the lease expired: worker %s stopped answering', e.lease_holder),
    lease_expires_at = $1::timestamptz
                       + least(30000, 500 * power(2, least(t.attempts, 16)))::bigint
                         * interval '1 millisecond'
FROM expired e
WHERE t.task_id = e.task_id
RETURNING t.task_id, format('%I.%I', t.chunk_schema, t.chunk_name), e.lease_holder, t.attempts
