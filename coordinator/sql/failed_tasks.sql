-- $1 max attempts (int)
SELECT format('%I.%I', chunk_schema, chunk_name),
       coalesce(display_name, format('%I.%I', hypertable_schema, hypertable_name)),
       coalesce(last_error, '')
FROM __backfill.task
WHERE worked IS NULL AND attempts >= $1::int
ORDER BY task_id
