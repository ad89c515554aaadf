-- $1 task id (bigint), $2 lease epoch (bigint), $3 worker id (text)
-- The holder gave the task up unfinished and rolled back (an aborted copy or verify: two
-- Ctrl-Cs): the lease ends now, with no failure recorded and no attempt counted. Only the
-- current holder; a copy or a verification not done yet.
UPDATE __backfill.task
SET lease_holder = NULL, lease_expires_at = NULL, lease_backend_pid = NULL
WHERE task_id = $1::bigint AND lease_epoch = $2::bigint AND lease_holder = $3::text
  AND (worked IS NULL OR verified IS NULL)
