-- $1 worker id (text), $2 lease timeout in milliseconds (bigint), $3 max attempts (int),
-- $4 now (timestamptz, the coordinator's clock)
-- Like lease_task.sql, for the verification of a copied task.
WITH next AS (
  SELECT task_id
  FROM __backfill.task
  WHERE worked IS NOT NULL AND verified IS NULL
    -- nobody holds it; or its copy's holder does, whose completion cleared the expiry (a copy
    -- that committed after verify reset the holders)
    AND (lease_holder IS NULL OR lease_expires_at IS NULL)
    AND attempts < $3::int
    AND (lease_expires_at IS NULL OR lease_expires_at < $4::timestamptz)
  ORDER BY task_id
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
            AS display_name
