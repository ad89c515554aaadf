-- $1 filter: POSIX regular expression (text) matched against "schema"."table" of hypertables
--    and "schema"."view" of continuous aggregates (as format('%I.%I') spells them), or NULL
-- Every user and materialization hypertable with its open (time) dimension, whether the
-- filter matches it, and for a continuous aggregate's materialization the hypertable it is
-- built on. Internal compressed hypertables have no dimensions and are left out.
SELECT h.id,
       h.schema_name,
       h.table_name,
       d.id AS dimension_id,
       d.column_name,
       d.column_type::text AS column_type,
       coalesce(ca.raw_hypertable_id, 0) AS raw_hypertable_id,
       coalesce(ca.user_view_schema, '') AS view_schema,
       coalesce(ca.user_view_name, '') AS view_name,
       ($1::text IS NULL
        OR format('%I.%I', h.schema_name, h.table_name) ~ $1::text
        OR (ca.mat_hypertable_id IS NOT NULL
            AND format('%I.%I', ca.user_view_schema, ca.user_view_name) ~ $1::text)) AS matched
FROM _timescaledb_catalog.hypertable h
JOIN LATERAL (
  SELECT d.id, d.column_name, d.column_type
  FROM _timescaledb_catalog.dimension d
  WHERE d.hypertable_id = h.id AND d.interval_length IS NOT NULL
  ORDER BY d.id
  LIMIT 1) d ON true
LEFT JOIN _timescaledb_catalog.continuous_agg ca ON ca.mat_hypertable_id = h.id
WHERE h.compression_state <> 2
ORDER BY h.id
