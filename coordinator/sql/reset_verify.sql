-- no parameters; a new verify checks every copied task again, from scratch
UPDATE __backfill.task
SET verified = NULL, verify_matches = NULL, verify_report = NULL, attempts = 0, gave_up = false,
    lease_holder = NULL, lease_expires_at = NULL
WHERE worked IS NOT NULL
