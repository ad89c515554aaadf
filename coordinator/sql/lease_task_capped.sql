-- $1 worker ids (text[]: one task each at most, the first the largest), $2 lease timeout in
-- milliseconds (bigint), $3 max attempts (int), $4 most chunks of one hypertable leased at
-- once (int, at least 1), $5 now (timestamptz, the coordinator's clock: leases are measured
-- on it)
-- lease_task.sql under --max-chunks-per-hypertable (a statement of its own, so that each keeps
-- a plan of its own): the hypertables under the cap come from the maintained counts and each
-- offers its best tasks (by index) up to its room under the cap, so a grant costs the same at
-- a million tasks as at a thousand, even when every hypertable is at its cap. Two of these at
-- once could both see room for one more: the coordinator runs one at a time.
-- The statement is prepared, and its cached plan does not know the max attempts: given an
-- index on attempts it would read every pending task through it and sort them (20 ms at
-- 10,000 tasks instead of 0.3). `attempts + 0` keeps that index out of its choices; tasks
-- whose attempts are used up are left out by gave_up anyway. The coordinator makes the
-- top-level LIMIT a constant (PgTaskStore, GrantStatement) so the cached plan is used.
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
      AND t.worked IS NULL AND t.lease_holder IS NULL AND NOT t.gave_up
      AND t.attempts + 0 < $3::int  -- no index on attempts: see above
      AND (t.lease_expires_at IS NULL OR t.lease_expires_at < $5::timestamptz)
    ORDER BY t.source_bytes DESC NULLS LAST, t.task_id
    LIMIT greatest(0, least($4::int - coalesce(l.n, 0), cardinality($1::text[])))) c
), picked AS (
  SELECT task_id FROM capped
  ORDER BY source_bytes DESC NULLS LAST, task_id
  LIMIT cardinality($1::text[])
), free AS (
  SELECT task_id, source_bytes
  FROM __backfill.task
  WHERE worked IS NULL AND lease_holder IS NULL AND NOT gave_up
    AND attempts + 0 < $3::int  -- no index on attempts: see above
    AND (lease_expires_at IS NULL OR lease_expires_at < $5::timestamptz)
    AND task_id IN (SELECT task_id FROM picked)
  FOR NO KEY UPDATE SKIP LOCKED
), next AS (
  SELECT task_id, row_number() OVER (ORDER BY source_bytes DESC NULLS LAST, task_id) AS n
  FROM free
), asking AS (
  SELECT worker, n FROM unnest($1::text[]) WITH ORDINALITY AS a(worker, n)
)
UPDATE __backfill.task t
SET lease_epoch = t.lease_epoch + 1,
    lease_holder = asking.worker,
    lease_expires_at = $5::timestamptz + $2::bigint * interval '1 millisecond',
    lease_backend_pid = NULL,  -- the new holder reports its own session
    lease_backend_start = NULL
FROM next JOIN asking USING (n)
WHERE t.task_id = next.task_id
RETURNING t.task_id, t.lease_epoch, t.hypertable_schema, t.hypertable_name, t.chunk_schema,
          t.chunk_name, t.target_chunk_schema, t.target_chunk_name, t.time_column, t.time_type,
          t.until_internal IS NOT NULL AS cut, coalesce(t.until_literal, '') AS until_literal,
          coalesce(t.from_literal, '') AS from_literal,
          coalesce(t.display_name, format('%I.%I', t.hypertable_schema, t.hypertable_name))
            AS display_name,
          asking.n,
          greatest((t.dimensions -> t.time_column ->> 0)::bigint, t.from_internal) AS range_start,
          least((t.dimensions -> t.time_column ->> 1)::bigint, t.until_internal) AS range_end
