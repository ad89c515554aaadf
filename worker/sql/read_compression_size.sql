-- $1 chunk schema (text), $2 chunk name (text)
-- The chunk's compression statistics (sizes before and after, row counts); no row for chunks
-- compressed by direct-compress COPY, which keep none.
SELECT s.uncompressed_heap_size, s.uncompressed_toast_size, s.uncompressed_index_size,
       s.compressed_heap_size, s.compressed_toast_size, s.compressed_index_size,
       coalesce(s.numrows_pre_compression, 0), coalesce(s.numrows_post_compression, 0)
FROM _timescaledb_catalog.compression_chunk_size s
JOIN _timescaledb_catalog.chunk c ON c.id = s.chunk_id
WHERE c.schema_name = $1::name AND c.table_name = $2::name
