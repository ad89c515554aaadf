-- no parameters
-- The target hypertables the staged tasks write into (a continuous aggregate's through its
-- target chunks' hypertable), as format('%I.%I') spells them.
SELECT DISTINCT format('%I.%I', h.schema_name, h.table_name)
FROM __backfill.task t
JOIN _timescaledb_catalog.chunk c
  ON c.schema_name = t.target_chunk_schema AND c.table_name = t.target_chunk_name
JOIN _timescaledb_catalog.hypertable h ON h.id = c.hypertable_id
WHERE t.worked IS NULL
