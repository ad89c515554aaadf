-- $1 target chunk schema (text), $2 target chunk name (text), $3 until (bigint, internal)
-- Before the copy of a materialization's chunk, in a transaction of its own: the invalidation
-- threshold of the hypertable the target's aggregate is built on is raised to the end of the
-- chunk's range. TimescaleDB logs writes only below it, and the copy marks the range
-- materialized as far as the source has it: a change arriving later must be logged. Raised
-- before the copy's source snapshot is taken, a dual write is either seen by that snapshot
-- (in the source's log) or logged by the target. A no-op for any other chunk. Catalog writes:
-- superusers only.
UPDATE _timescaledb_catalog.continuous_aggs_invalidation_threshold t
SET watermark = $3::bigint
FROM _timescaledb_catalog.chunk c
JOIN _timescaledb_catalog.continuous_agg ca ON ca.mat_hypertable_id = c.hypertable_id
WHERE c.schema_name = $1::name AND c.table_name = $2::name
  AND t.hypertable_id = ca.raw_hypertable_id AND t.watermark < $3::bigint
