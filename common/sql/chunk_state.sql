-- $1 chunk schema (text), $2 chunk name (text)
-- The chunk's status bits (1 compressed, 2 unordered, 4 frozen, 8 partial), its compressed
-- chunk ('' when none) and its hypertable (for a continuous aggregate, the materialization).
SELECT c.status,
       coalesce(cc.schema_name, '') AS compressed_schema,
       coalesce(cc.table_name, '') AS compressed_name,
       h.schema_name AS hypertable_schema,
       h.table_name AS hypertable_name
FROM _timescaledb_catalog.chunk c
JOIN _timescaledb_catalog.hypertable h ON h.id = c.hypertable_id
LEFT JOIN _timescaledb_catalog.chunk cc ON cc.id = c.compressed_chunk_id
WHERE c.schema_name = $1::name AND c.table_name = $2::name
