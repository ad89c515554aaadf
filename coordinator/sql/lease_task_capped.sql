-- $1 worker id (text), $2 lease timeout in milliseconds (bigint), $3 max attempts (int),
-- $4 most chunks of one hypertable leased at once (int, at least 1), $5 now (timestamptz, the
-- coordinator's clock: leases are measured on it)
-- lease_task.sql under --max-chunks-per-hypertable (a statement of its own, so that each keeps
-- a plan of its own): the hypertables under the cap come from the maintained counts and each
-- offers its best task (by index), so a grant costs the same at a million tasks as at a
-- thousand, even when every hypertable is at its cap.
WITH leased AS (  -- the few tasks leased now, counted per hypertable in one pass
  SELECT hypertable_schema, hypertable_name, count(*) AS n
  FROM __backfill.task
  WHERE lease_expires_at > $5::timestamptz AND lease_holder IS NOT NULL AND worked IS NULL
  GROUP BY 1, 2
), open AS (
  SELECT DISTINCT hypertable_schema, hypertable_name FROM __backfill.task_count
  WHERE total > done
), capped AS (
  SELECT c.task_id, c.source_bytes
  FROM open h
  LEFT JOIN leased l
    ON l.hypertable_schema = h.hypertable_schema AND l.hypertable_name = h.hypertable_name
  CROSS JOIN LATERAL (
    SELECT t.task_id, t.source_bytes
    FROM __backfill.task t
    WHERE t.hypertable_schema = h.hypertable_schema AND t.hypertable_name = h.hypertable_name
      AND t.worked IS NULL AND t.lease_holder IS NULL
      AND t.attempts < $3::int
      AND (t.lease_expires_at IS NULL OR t.lease_expires_at < $5::timestamptz)
    ORDER BY t.source_bytes DESC NULLS LAST, t.task_id
    LIMIT 1) c
  WHERE coalesce(l.n, 0) < $4::int
), next AS (
  SELECT task_id
  FROM __backfill.task
  WHERE worked IS NULL AND lease_holder IS NULL
    AND attempts < $3::int
    AND (lease_expires_at IS NULL OR lease_expires_at < $5::timestamptz)
    AND task_id = (SELECT task_id FROM capped
                   ORDER BY source_bytes DESC NULLS LAST, task_id LIMIT 1)
  FOR NO KEY UPDATE SKIP LOCKED)
UPDATE __backfill.task t
SET lease_epoch = t.lease_epoch + 1,
    lease_holder = $1::text,
    lease_expires_at = $5::timestamptz + $2::bigint * interval '1 millisecond',
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
