-- $1 chunk schema (text), $2 chunk name (text), $3..$10 the eight statistics in the order
-- read_compression_size.sql returns them (bigint)
-- Writing TimescaleDB's catalog needs a superuser; callers run this under a savepoint.
UPDATE _timescaledb_catalog.compression_chunk_size s
SET uncompressed_heap_size = $3::bigint,
    uncompressed_toast_size = $4::bigint,
    uncompressed_index_size = $5::bigint,
    compressed_heap_size = $6::bigint,
    compressed_toast_size = $7::bigint,
    compressed_index_size = $8::bigint,
    numrows_pre_compression = $9::bigint,
    numrows_post_compression = $10::bigint
FROM _timescaledb_catalog.chunk c
WHERE c.id = s.chunk_id AND c.schema_name = $1::name AND c.table_name = $2::name
