-- $1 hypertable schema, $2 hypertable name, $3 chunk schema, $4 chunk name,
-- $5 target chunk schema, $6 target chunk name, $7 dimensions (jsonb text), $8 time column,
-- $9 time type, $10 until (internal units, bigint, NULL = whole chunk), $11 until literal
INSERT INTO __backfill.task (hypertable_schema, hypertable_name, chunk_schema, chunk_name,
                             target_chunk_schema, target_chunk_name, dimensions, time_column,
                             time_type, until_internal, until_literal)
VALUES ($1, $2, $3, $4, $5, $6, $7::text::jsonb, $8, $9, $10::bigint, $11)
ON CONFLICT (chunk_schema, chunk_name) DO NOTHING
RETURNING task_id
