-- $1 seconds since this copy started (float8)
-- After one Ctrl-C: the chunks whose copy committed during this run (the window is measured
-- on the target's clock, so a clock offset between hosts does not matter), oldest first, each
-- with how many chunks are left to copy and how many are staged; one row with a NULL chunk
-- when none committed.
WITH counts AS (
  SELECT count(*) FILTER (WHERE worked IS NULL) AS left_to_copy, count(*) AS total
  FROM __backfill.task
), done AS (
  SELECT task_id, lower(worked) AS worked_at, format('%I.%I', chunk_schema, chunk_name) AS chunk,
         coalesce(rows_copied, 0) AS rows_copied, coalesce(bytes_copied, 0) AS bytes_copied
  FROM __backfill.task
  WHERE worked IS NOT NULL AND lower(worked) >= now() - $1::float8 * interval '1 second'
)
SELECT d.chunk, d.rows_copied, d.bytes_copied, c.left_to_copy, c.total
FROM counts c LEFT JOIN done d ON true
ORDER BY d.worked_at, d.task_id
