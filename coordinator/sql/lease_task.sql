-- $1 worker ids (text[]: one task each at most, the first the largest), $2 lease timeout in
-- milliseconds (bigint), $3 max attempts (int), $4 now (timestamptz, the coordinator's clock:
-- leases are measured on it)
-- Grants the largest pending tasks nobody holds, one to each worker asking at once (the
-- coordinator groups concurrent requests: one round trip and one commit for all of them),
-- bumping their epochs. Returns each grant with the position of its worker in $1. A lease
-- that expired is given up by the sweep (expire_leases.sql) first, so this scan never walks
-- past the tasks workers hold, nor past tasks whose attempts are used up (gave_up). Rows a
-- worker holds KEY SHARE locks on are still grantable (NO KEY UPDATE does not conflict), so a
-- re-grant never waits on a live or stopped worker; its commit is then fenced out by epoch.
-- Under a per-hypertable cap, lease_task_capped.sql instead.
-- The statement is prepared, and its cached plan does not know the max attempts: given an
-- index on attempts it would read every pending task through it and sort them (20 ms at
-- 10,000 tasks instead of 0.3). `attempts + 0` keeps that index out of its choices; tasks
-- whose attempts are used up are left out by gave_up anyway. The coordinator makes the
-- top-level LIMIT a constant (PgTaskStore, GrantStatement) so the cached plan is used.
WITH free AS (
  SELECT task_id, source_bytes
  FROM __backfill.task
  WHERE worked IS NULL AND lease_holder IS NULL AND NOT gave_up
    AND attempts + 0 < $3::int  -- no index on attempts: see above
    AND (lease_expires_at IS NULL OR lease_expires_at < $4::timestamptz)  -- a failure's back-off
  ORDER BY source_bytes DESC NULLS LAST, task_id  -- largest first: a short tail
  LIMIT cardinality($1::text[])
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
          asking.n,
          greatest((t.dimensions -> t.time_column ->> 0)::bigint, t.from_internal) AS range_start,
          least((t.dimensions -> t.time_column ->> 1)::bigint, t.until_internal) AS range_end
