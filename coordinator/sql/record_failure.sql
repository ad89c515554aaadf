-- $1 task id (bigint), $2 lease epoch (bigint), $3 error (text), $4 retryable (bool),
-- $5 max attempts (int), $6 worker id (text), $7 now (timestamptz, the coordinator's clock)
-- Only the current holder's report counts; no row means it is not (any more).
-- Frees the lease and records the error. A failure retrying may fix (a lost connection, a
-- restarting database) holds the task back for a growing delay (0.5 s doubling, at most
-- 30 s) before it can be granted again; one it cannot fix (permission denied, a schema
-- mismatch) uses up the attempts at once, so the task waits for the next copy.
UPDATE __backfill.task
SET lease_holder = NULL,
    lease_expires_at = CASE
      WHEN $4::bool THEN $7::timestamptz
                         + least(30000, 500 * power(2, least(attempts, 16)))::bigint
                           * interval '1 millisecond'
    END,
    lease_backend_pid = NULL,
    last_error = $3::text,
    attempts = CASE WHEN $4::bool THEN attempts + 1 ELSE greatest(attempts + 1, $5::int) END,
    gave_up = NOT $4::bool OR attempts + 1 >= $5::int
WHERE task_id = $1::bigint AND lease_epoch = $2::bigint AND lease_holder = $6::text
