-- $1 target chunk schema (text), $2 target chunk name (text), $3 cut from (bigint), $4 cut
-- until (bigint), $5 add from (bigint), $6 add until (bigint), $7 the source's pending
-- invalidations' lows (bigint[]), $8 their highs (bigint[])
-- In the copy transaction of a materialization's chunk: what the target's continuous
-- aggregate still has to recompute becomes, over the chunk, what the source's has
-- (source_invalidations.sql). Over [$3, $4) the target's own entries are replaced; over
-- [$5, $6), which reaches a margin past both ends for buckets that straddle a chunk's edge,
-- the source's entries are added and nothing is removed, so a neighbour copied at another
-- snapshot never loses an entry its bucket needs. The invalidation threshold was raised past
-- $4 before (raise_invalidation_threshold.sql), so no range is marked materialized above it.
-- Catalog writes: superusers only. Returns the number of entries added.
WITH cagg AS (
  SELECT ca.mat_hypertable_id, ca.raw_hypertable_id
  FROM _timescaledb_catalog.chunk c
  JOIN _timescaledb_catalog.continuous_agg ca ON ca.mat_hypertable_id = c.hypertable_id
  WHERE c.schema_name = $1::name AND c.table_name = $2::name),
cut AS (
  DELETE FROM _timescaledb_catalog.continuous_aggs_materialization_invalidation_log l
  USING cagg
  WHERE l.materialization_id = cagg.mat_hypertable_id
    AND $3::bigint < $4::bigint
    AND l.greatest_modified_value >= $3::bigint AND l.lowest_modified_value < $4::bigint
  RETURNING l.materialization_id, l.lowest_modified_value AS lo, l.greatest_modified_value AS hi),
kept AS (
  SELECT materialization_id, lo, $3::bigint - 1 AS hi FROM cut WHERE lo < $3::bigint
  UNION ALL
  SELECT materialization_id, $4::bigint, hi FROM cut WHERE hi >= $4::bigint),
added AS (
  SELECT cagg.mat_hypertable_id AS materialization_id,
         greatest(s.lo, $5::bigint) AS lo, least(s.hi, $6::bigint - 1) AS hi
  FROM cagg, unnest($7::bigint[], $8::bigint[]) AS s(lo, hi)
  WHERE s.hi >= $5::bigint AND s.lo < $6::bigint),
written AS (
  INSERT INTO _timescaledb_catalog.continuous_aggs_materialization_invalidation_log
    (materialization_id, lowest_modified_value, greatest_modified_value)
  SELECT materialization_id, lo, hi FROM kept
  UNION ALL
  SELECT materialization_id, lo, hi FROM added
  RETURNING 1)
SELECT (SELECT count(*) FROM added) AS added, (SELECT count(*) FROM written) AS written
