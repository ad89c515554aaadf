-- $1 max bytes per second (bigint, NULL: unchanged), $2 max chunks per hypertable (int, NULL:
-- unchanged)
-- The settings after the change.
UPDATE __backfill.throttle
SET max_bytes_per_second = coalesce($1::bigint, max_bytes_per_second),
    max_chunks_per_hypertable = coalesce($2::int, max_chunks_per_hypertable),
    updated_at = now()
RETURNING max_bytes_per_second, max_chunks_per_hypertable
