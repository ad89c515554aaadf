-- $1 source chunk schema (text), $2 source chunk name (text), $3 from (bigint), $4 until
-- (bigint): the task's range [from, until) in internal units
-- What the source still has to recompute for the continuous aggregate whose materialization
-- holds this chunk, read in the copy's snapshot: its pending invalidations (its own log and
-- the log of the hypertable it is built on, not yet moved) that touch [$3, $4 + margin), and the margin
-- (two buckets, in internal units) by which a bucket can reach past a chunk's edge. No row
-- when the chunk is not a materialization's, when the aggregate's bucket is unknown, or when
-- its invalidations are read from WAL (2.22 invalidate_using = 'wal'), which no catalog holds.
WITH cagg AS (
  SELECT ca.mat_hypertable_id, ca.raw_hypertable_id,
         CASE WHEN bf.bucket_width ~ '^-?[0-9]+$' THEN 2 * bf.bucket_width::bigint
              ELSE 2 * (extract(epoch FROM bf.bucket_width::interval) * 1000000)::bigint
         END AS margin
  FROM _timescaledb_catalog.chunk c
  JOIN _timescaledb_catalog.continuous_agg ca ON ca.mat_hypertable_id = c.hypertable_id
  JOIN _timescaledb_catalog.continuous_aggs_bucket_function bf
    ON bf.mat_hypertable_id = ca.mat_hypertable_id
  WHERE c.schema_name = $1::name AND c.table_name = $2::name
    AND NOT EXISTS (
      SELECT 1 FROM timescaledb_information.continuous_aggregates v
      WHERE v.view_schema = ca.user_view_schema AND v.view_name = ca.user_view_name
        AND to_jsonb(v) ->> 'invalidate_using' = 'wal')),
touching AS (
  -- [$3, $4 + margin), without overflowing at the end of time
  SELECT l.lowest_modified_value AS lo, l.greatest_modified_value AS hi
  FROM cagg
  JOIN _timescaledb_catalog.continuous_aggs_materialization_invalidation_log l
    ON l.materialization_id = cagg.mat_hypertable_id
  UNION ALL
  SELECT l.lowest_modified_value, l.greatest_modified_value
  FROM cagg
  JOIN _timescaledb_catalog.continuous_aggs_hypertable_invalidation_log l
    ON l.hypertable_id = cagg.raw_hypertable_id)
SELECT cagg.margin,
       coalesce(array_agg(t.lo ORDER BY t.lo, t.hi) FILTER (WHERE t.lo IS NOT NULL), '{}') AS lows,
       coalesce(array_agg(t.hi ORDER BY t.lo, t.hi) FILTER (WHERE t.lo IS NOT NULL), '{}') AS highs
FROM cagg
LEFT JOIN touching t
  ON t.hi >= $3::bigint
 AND t.lo < $4::bigint + least(cagg.margin, 9223372036854775807 - $4::bigint)
GROUP BY cagg.margin
