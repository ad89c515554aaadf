-- $1 task id (bigint), $2 lease epoch (bigint), $3 matches (bool), $4 report (jsonb text)
-- No row means the lease was re-granted; the report is then discarded. The holder moves to
-- done_by, as in complete_task.sql.
UPDATE __backfill.task
SET verified = tstzrange(now(), clock_timestamp(), '[)'),
    done_by = lease_holder,
    lease_holder = NULL,
    verify_matches = $3::bool,
    verify_report = $4::text::jsonb,
    lease_expires_at = NULL,
    lease_backend_pid = NULL,
    last_error = NULL
WHERE task_id = $1::bigint AND lease_epoch = $2::bigint AND worked IS NOT NULL
  AND verified IS NULL
RETURNING task_id
