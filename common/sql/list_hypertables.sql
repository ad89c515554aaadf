-- $1 filter: POSIX regular expression (text) matched against "schema"."table" of hypertables
--    and "schema"."view" of continuous aggregates, or NULL for every hypertable
-- One row per user or materialization hypertable with its open (time) dimension; internal
-- compressed hypertables have no dimensions and are left out.
SELECT h.id,
       h.schema_name,
       h.table_name,
       d.id AS dimension_id,
       d.column_name,
       d.column_type::text AS column_type,
       CASE WHEN ca.mat_hypertable_id IS NULL THEN ''
            ELSE format('%I.%I', ca.user_view_schema, ca.user_view_name) END AS cagg_view
FROM _timescaledb_catalog.hypertable h
JOIN LATERAL (
  SELECT d.id, d.column_name, d.column_type
  FROM _timescaledb_catalog.dimension d
  WHERE d.hypertable_id = h.id AND d.interval_length IS NOT NULL
  ORDER BY d.id
  LIMIT 1) d ON true
LEFT JOIN _timescaledb_catalog.continuous_agg ca ON ca.mat_hypertable_id = h.id
WHERE h.compression_state <> 2
  AND ($1::text IS NULL
       OR format('%I.%I', h.schema_name, h.table_name) ~ $1::text
       OR (ca.mat_hypertable_id IS NOT NULL
           AND format('%I.%I', ca.user_view_schema, ca.user_view_name) ~ $1::text))
ORDER BY h.schema_name, h.table_name
