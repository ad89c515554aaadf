-- no parameters
-- Chunks whose last attempt failed and that are not copied yet, with the stored error.
SELECT format('%I.%I', chunk_schema, chunk_name) AS chunk,
       coalesce(display_name, format('%I.%I', hypertable_schema, hypertable_name))
         AS hypertable,
       attempts,
       last_error
FROM __backfill.task
WHERE worked IS NULL AND last_error IS NOT NULL
ORDER BY attempts DESC, task_id
