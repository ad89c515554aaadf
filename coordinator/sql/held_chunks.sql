-- $1 worker id prefix (text): this process's embedded workers
-- The chunks those workers are copying right now: leased, not done.
SELECT task_id, format('%I.%I', chunk_schema, chunk_name) AS chunk
FROM __backfill.task
WHERE worked IS NULL AND starts_with(lease_holder, $1::text)
  AND lease_expires_at > clock_timestamp()
ORDER BY task_id
