-- $1 task ids (bigint[])
-- Whether each of these tasks' copy committed.
SELECT format('%I.%I', chunk_schema, chunk_name) AS chunk, worked IS NOT NULL AS done
FROM __backfill.task
WHERE task_id = ANY($1::bigint[])
ORDER BY task_id
