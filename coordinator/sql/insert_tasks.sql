-- $1 tasks: a JSON array of objects with keys hypertable_schema, hypertable_name,
--    chunk_schema, chunk_name, target_chunk_schema, target_chunk_name, dimensions (object),
--    time_column, time_type, until_internal (number, or null for the whole chunk),
--    until_literal (string or null), from_internal and from_literal (null: from the chunk's
--    start), source_bytes (number: the source chunk's size on disk), display_name (the
--    hypertable as the user knows it: a continuous aggregate's view)
-- One round trip per batch. Chunks that already have a task are left alone.
INSERT INTO __backfill.task (hypertable_schema, hypertable_name, chunk_schema, chunk_name,
                             target_chunk_schema, target_chunk_name, dimensions, time_column,
                             time_type, until_internal, until_literal, from_internal,
                             from_literal, source_bytes, display_name)
SELECT t.hypertable_schema, t.hypertable_name, t.chunk_schema, t.chunk_name,
       t.target_chunk_schema, t.target_chunk_name, t.dimensions, t.time_column, t.time_type,
       t.until_internal, t.until_literal, t.from_internal, t.from_literal, t.source_bytes,
       t.display_name
FROM jsonb_to_recordset($1::text::jsonb) AS t(
  hypertable_schema name, hypertable_name name, chunk_schema name, chunk_name name,
  target_chunk_schema name, target_chunk_name name, dimensions jsonb, time_column name,
  time_type text, until_internal bigint, until_literal text, from_internal bigint,
  from_literal text, source_bytes bigint, display_name text)
ON CONFLICT (chunk_schema, chunk_name) DO NOTHING
RETURNING task_id
