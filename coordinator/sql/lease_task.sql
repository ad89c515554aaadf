-- $1 worker id (text), $2 lease timeout in milliseconds (bigint), $3 max attempts (int),
-- $4 now (timestamptz, the coordinator's clock: leases are measured on it)
-- Grants the largest pending task nobody holds, bumping its epoch. A lease that expired is
-- given up by the sweep (expire_leases.sql) first, so this scan never walks past the tasks
-- workers hold. Rows a worker holds KEY SHARE locks on are still grantable (NO KEY UPDATE does
-- not conflict), so a re-grant never waits on a live or stopped worker; its commit is then
-- fenced out by epoch. Under a per-hypertable cap, lease_task_capped.sql instead.
WITH next AS (
  SELECT task_id
  FROM __backfill.task
  WHERE worked IS NULL AND lease_holder IS NULL
    AND attempts < $3::int
    AND (lease_expires_at IS NULL OR lease_expires_at < $4::timestamptz)  -- a failure's back-off
  ORDER BY source_bytes DESC NULLS LAST, task_id  -- largest first: a short tail
  LIMIT 1
  FOR NO KEY UPDATE SKIP LOCKED)
UPDATE __backfill.task t
SET lease_epoch = t.lease_epoch + 1,
    lease_holder = $1::text,
    lease_expires_at = $4::timestamptz + $2::bigint * interval '1 millisecond',
    lease_backend_pid = NULL,  -- the new holder reports its own session
    lease_backend_start = NULL
FROM next
WHERE t.task_id = next.task_id
RETURNING t.task_id, t.lease_epoch, t.hypertable_schema, t.hypertable_name, t.chunk_schema,
          t.chunk_name, t.target_chunk_schema, t.target_chunk_name, t.time_column, t.time_type,
          t.until_internal IS NOT NULL AS cut, coalesce(t.until_literal, '') AS until_literal,
          coalesce(t.from_literal, '') AS from_literal,
          coalesce(t.display_name, format('%I.%I', t.hypertable_schema, t.hypertable_name))
            AS display_name,
          greatest((t.dimensions -> t.time_column ->> 0)::bigint, t.from_internal) AS range_start,
          least((t.dimensions -> t.time_column ->> 1)::bigint, t.until_internal) AS range_end
