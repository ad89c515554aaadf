-- $1 task id (bigint), $2 lease epoch (bigint), $3 worker id (text), $4 lease timeout in ms
-- One row when the lease is still this worker's and was extended; none when it was lost.
UPDATE __backfill.task
SET lease_expires_at = clock_timestamp() + $4::bigint * interval '1 millisecond'
WHERE task_id = $1::bigint AND lease_epoch = $2::bigint AND lease_holder = $3::text
  AND worked IS NULL
RETURNING task_id
