-- $1 a JSON array of objects {task_id, until_internal (null = to the chunk's end),
--    until_literal, from_internal (null = from the chunk's start), from_literal}
-- Widens staged tasks to a later --until or an earlier --from. The task is pending again (a copy of the wider
-- range deletes and re-copies what the narrower one copied), and its epoch is bumped so a
-- copy of the narrower range still in flight cannot complete it.
UPDATE __backfill.task t
SET until_internal = w.until_internal,
    until_literal = w.until_literal,
    from_internal = w.from_internal,
    from_literal = w.from_literal,
    worked = NULL,
    copy_message = NULL,
    rows_copied = NULL,
    bytes_copied = NULL,
    attempts = 0,
    gave_up = false,
    last_error = NULL,
    verified = NULL,
    verify_matches = NULL,
    verify_report = NULL,
    lease_epoch = t.lease_epoch + 1,
    lease_holder = NULL,
    lease_expires_at = NULL
FROM jsonb_to_recordset($1::text::jsonb) AS w(task_id bigint, until_internal bigint,
                                               until_literal text, from_internal bigint,
                                               from_literal text)
WHERE t.task_id = w.task_id
