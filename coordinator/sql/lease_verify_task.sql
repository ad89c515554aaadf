-- $1 worker ids (text[]: one task each at most), $2 lease timeout in milliseconds (bigint),
-- $3 max attempts (int), $4 now (timestamptz, the coordinator's clock)
-- Like lease_task.sql, for the verification of copied tasks, in task order.
-- The statement is prepared, and its cached plan does not know the max attempts: given an
-- index on attempts it would read every pending task through it and sort them (20 ms at
-- 10,000 tasks instead of 0.3). `attempts + 0` keeps that index out of its choices; tasks
-- whose attempts are used up are left out by gave_up anyway. The coordinator makes the
-- top-level LIMIT a constant (PgTaskStore, GrantStatement) so the cached plan is used.
WITH free AS (
  SELECT task_id
  FROM __backfill.task
  WHERE worked IS NOT NULL AND verified IS NULL AND NOT gave_up
    -- nobody holds it; or its copy's holder does, whose completion cleared the expiry (a copy
    -- that committed after verify reset the holders)
    AND (lease_holder IS NULL OR lease_expires_at IS NULL)
    AND attempts + 0 < $3::int  -- no index on attempts: see above
    AND (lease_expires_at IS NULL OR lease_expires_at < $4::timestamptz)
  ORDER BY task_id
  LIMIT cardinality($1::text[])
  FOR NO KEY UPDATE SKIP LOCKED
), next AS (
  SELECT task_id, row_number() OVER (ORDER BY task_id) AS n FROM free
), asking AS (
  SELECT worker, n FROM unnest($1::text[]) WITH ORDINALITY AS a(worker, n)
)
UPDATE __backfill.task t
SET lease_epoch = t.lease_epoch + 1,
    lease_holder = asking.worker,
    lease_expires_at = $4::timestamptz + $2::bigint * interval '1 millisecond',
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
          asking.n
