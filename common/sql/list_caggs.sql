-- $1 filter: POSIX regular expression (text) matched against "schema"."view" of continuous
--    aggregates (as format('%I.%I') spells them), or NULL for all of them
-- Every continuous aggregate with its watermark (the end of its materialized range, in
-- internal units) and its time type; what each is built on links the hierarchy.
SELECT ca.mat_hypertable_id,
       ca.raw_hypertable_id,
       ca.user_view_schema,
       ca.user_view_name,
       ($1::text IS NULL
        OR format('%I.%I', ca.user_view_schema, ca.user_view_name) ~ $1::text) AS matched,
       _timescaledb_functions.cagg_watermark(ca.mat_hypertable_id) AS watermark,
       d.column_type::text AS time_type
FROM _timescaledb_catalog.continuous_agg ca
JOIN LATERAL (
  SELECT d.column_type FROM _timescaledb_catalog.dimension d
  WHERE d.hypertable_id = ca.mat_hypertable_id
  ORDER BY d.id
  LIMIT 1) d ON true
ORDER BY ca.mat_hypertable_id
