-- $1 task id (bigint), $2 lease epoch (bigint), $3 rows (bigint), $4 bytes (bigint),
-- $5 message (text)
-- Last statement before commit. No row means the lease was re-granted: roll back. The holder
-- moves to done_by (lease_holder names only the tasks held now; see migration_5.sql).
UPDATE __backfill.task
SET worked = tstzrange(now(), clock_timestamp(), '[)'),
    done_by = lease_holder,
    lease_holder = NULL,
    rows_copied = $3::bigint,
    bytes_copied = $4::bigint,
    copy_message = $5::text,
    lease_expires_at = NULL,
    lease_backend_pid = NULL,
    last_error = NULL,
    verified = NULL,
    verify_matches = NULL,
    verify_report = NULL,
    copied = true,
    copied_from_literal = from_literal,
    copied_until_literal = until_literal
WHERE task_id = $1::bigint AND lease_epoch = $2::bigint AND worked IS NULL
RETURNING task_id
