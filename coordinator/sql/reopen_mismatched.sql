-- no parameters; copy --repair: re-opens the copied tasks whose last verification found the
-- target different from the source (a damaged target chunk, or a source chunk changed since
-- the copy). Their chunks are copied again, which replaces each task's range in the target,
-- and verified afresh by the next verify. The epoch bump fences out any holder of an older
-- lease. Returns the tasks re-opened.
UPDATE __backfill.task
SET worked = NULL, lease_epoch = lease_epoch + 1, lease_holder = NULL, lease_expires_at = NULL,
    lease_backend_pid = NULL, lease_backend_start = NULL, attempts = 0, gave_up = false,
    last_error = NULL,
    verified = NULL, verify_matches = NULL, verify_report = NULL, rows_copied = NULL,
    bytes_copied = NULL, copy_message = NULL
WHERE worked IS NOT NULL AND verify_matches IS FALSE
RETURNING format('%I.%I', chunk_schema, chunk_name)
