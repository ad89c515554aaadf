-- no parameters; tasks whose copy committed, for verification
SELECT task_id, hypertable_schema, hypertable_name, chunk_schema, chunk_name,
       target_chunk_schema, target_chunk_name, time_column, time_type,
       until_internal IS NOT NULL AS cut, coalesce(until_literal, ''), coalesce(copy_message, '')
FROM __backfill.task
WHERE worked IS NOT NULL
ORDER BY task_id
