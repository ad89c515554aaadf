-- $1 hypertable id (int), $2 time dimension id (int), $3 until in internal units (bigint),
-- $4 from in internal units (bigint; the type's minimum for no lower bound)
-- TimescaleDB 2.26 and later (no chunk.dropped; slices reached through chunk_constraint, a
-- view over dimension_slice since 2.28). Chunks with any time in [$4, $3), oldest first.
SELECT c.id,
       c.schema_name,
       c.table_name,
       (c.status & 1) = 1 AS compressed,
       ts.range_start,
       ts.range_end,
       (SELECT jsonb_object_agg(d.column_name, jsonb_build_array(s.range_start, s.range_end))
        FROM _timescaledb_catalog.chunk_constraint cc2
        JOIN _timescaledb_catalog.dimension_slice s ON s.id = cc2.dimension_slice_id
        JOIN _timescaledb_catalog.dimension d ON d.id = s.dimension_id
        WHERE cc2.chunk_id = c.id)::text AS slices,
       -- On disk: the chunk (its uncompressed rows) plus its compressed chunk, if any.
       pg_catalog.pg_total_relation_size(format('%I.%I', c.schema_name, c.table_name)::regclass)
         + coalesce((SELECT pg_catalog.pg_total_relation_size(
                               format('%I.%I', z.schema_name, z.table_name)::regclass)
                     FROM _timescaledb_catalog.chunk z WHERE z.id = c.compressed_chunk_id), 0)
         AS bytes,
       -- Decompressed: the compressed part's size before compression, plus the rest.
       pg_catalog.pg_total_relation_size(format('%I.%I', c.schema_name, c.table_name)::regclass)
         + coalesce((SELECT s.uncompressed_heap_size + s.uncompressed_toast_size
                              + s.uncompressed_index_size
                     FROM _timescaledb_catalog.compression_chunk_size s
                     WHERE s.chunk_id = c.id AND (c.status & 1) = 1), 0) AS uncompressed_bytes
FROM _timescaledb_catalog.chunk c
JOIN _timescaledb_catalog.chunk_constraint cc ON cc.chunk_id = c.id
JOIN _timescaledb_catalog.dimension_slice ts
  ON ts.id = cc.dimension_slice_id AND ts.dimension_id = $2::int
WHERE c.hypertable_id = $1::int
  AND NOT c.osm_chunk
  AND ts.range_start < $3::bigint
  AND ts.range_end > $4::bigint
ORDER BY ts.range_start, c.id
