-- $1 task id (bigint), $2 lease epoch (bigint)
-- First statement of a copy transaction: proves this worker holds the current epoch and pins
-- the row (KEY SHARE, no wait). Heartbeats and re-grants do not conflict with this lock;
-- completion re-checks the epoch.
SELECT task_id FROM __backfill.task
WHERE task_id = $1::bigint AND lease_epoch = $2::bigint AND worked IS NULL
FOR KEY SHARE NOWAIT
