-- $1 worker id (text), $2 lease timeout in milliseconds (bigint), $3 max attempts (int),
-- $4 now (timestamptz, the coordinator's clock: leases are measured on it)
-- Grants the next pending task whose lease is free or expired, bumping its epoch. Rows a
-- worker holds KEY SHARE locks on are still grantable (NO KEY UPDATE does not conflict), so a
-- re-grant never waits on a live or stopped worker; its commit is then fenced out by epoch.
-- Under a per-hypertable cap, lease_task_capped.sql instead. Leases expired are found apart
-- from free tasks, so that the scan for the largest free task never walks past held ones.
WITH free AS (  -- the largest task nobody holds (a failed one's back-off is an expiry)
  SELECT task_id, source_bytes, lease_holder AS previous_holder, lease_backend_pid AS previous_pid,
         lease_backend_start AS previous_start
  FROM __backfill.task
  WHERE worked IS NULL AND lease_holder IS NULL
    AND attempts < $3::int
    AND (lease_expires_at IS NULL OR lease_expires_at < $4::timestamptz)
  ORDER BY source_bytes DESC NULLS LAST, task_id  -- largest first: a short tail
  LIMIT 1
  FOR NO KEY UPDATE SKIP LOCKED
), expired AS (  -- a task whose holder let its lease expire (few: found through who holds it)
  SELECT task_id, source_bytes, lease_holder AS previous_holder, lease_backend_pid AS previous_pid,
         lease_backend_start AS previous_start
  FROM __backfill.task
  WHERE worked IS NULL AND lease_holder IS NOT NULL
    AND attempts < $3::int
    AND lease_expires_at < $4::timestamptz
  ORDER BY source_bytes DESC NULLS LAST, task_id
  LIMIT 1
  FOR NO KEY UPDATE SKIP LOCKED
), next AS (
  SELECT * FROM (SELECT * FROM free UNION ALL SELECT * FROM expired) c
  ORDER BY source_bytes DESC NULLS LAST, task_id
  LIMIT 1
)
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
          coalesce(next.previous_holder, '') AS previous_holder, next.previous_pid,
          next.previous_start, coalesce(t.from_literal, '') AS from_literal,
          coalesce(t.display_name, format('%I.%I', t.hypertable_schema, t.hypertable_name))
            AS display_name,
          greatest((t.dimensions -> t.time_column ->> 0)::bigint, t.from_internal) AS range_start,
          least((t.dimensions -> t.time_column ->> 1)::bigint, t.until_internal) AS range_end
