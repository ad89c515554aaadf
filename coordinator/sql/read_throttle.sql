-- no parameters
SELECT max_bytes_per_second, max_chunks_per_hypertable FROM __backfill.throttle
