-- no parameters
-- Every copied task's verification report, or its last error when verifying it failed.
SELECT coalesce(verify_report::text, ''), coalesce(last_error, ''),
       coalesce(display_name, format('%I.%I', hypertable_schema, hypertable_name)),
       format('%I.%I', chunk_schema, chunk_name),
       format('%I.%I', target_chunk_schema, target_chunk_name)
FROM __backfill.task
WHERE worked IS NOT NULL
ORDER BY task_id
