-- $1 task id (bigint), $2 lease epoch (bigint), $3 error (text), $4 retryable (bool),
-- $5 max attempts (int)
-- Frees the lease and records the error; a failure retrying cannot fix uses up the attempts
-- at once, so the task waits for the next copy.
UPDATE __backfill.task
SET lease_holder = NULL,
    lease_expires_at = NULL,
    lease_backend_pid = NULL,
    last_error = $3::text,
    attempts = CASE WHEN $4::bool THEN attempts + 1 ELSE greatest(attempts + 1, $5::int) END
WHERE task_id = $1::bigint AND lease_epoch = $2::bigint
