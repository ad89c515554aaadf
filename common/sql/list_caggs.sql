-- $1 filter: POSIX regular expression (text) matched against "schema"."view" of continuous
--    aggregates (as format('%I.%I') spells them), or NULL for all of them
-- Every continuous aggregate with its watermark (the end of its materialized range, in
-- internal units), its time type, and two of its buckets in internal units (0 when unknown);
-- what each is built on links the hierarchy.
SELECT ca.mat_hypertable_id,
       ca.raw_hypertable_id,
       ca.user_view_schema,
       ca.user_view_name,
       ($1::text IS NULL
        OR format('%I.%I', ca.user_view_schema, ca.user_view_name) ~ $1::text) AS matched,
       _timescaledb_functions.cagg_watermark(ca.mat_hypertable_id) AS watermark,
       d.column_type::text AS time_type,
       coalesce((SELECT CASE WHEN bf.bucket_width ~ '^-?[0-9]+$' THEN 2 * bf.bucket_width::bigint
                        ELSE 2 * (extract(epoch FROM bf.bucket_width::interval) * 1000000)::bigint
                        END
                 FROM _timescaledb_catalog.continuous_aggs_bucket_function bf
                 WHERE bf.mat_hypertable_id = ca.mat_hypertable_id), 0) AS bucket_margin
FROM _timescaledb_catalog.continuous_agg ca
JOIN LATERAL (
  SELECT d.column_type FROM _timescaledb_catalog.dimension d
  WHERE d.hypertable_id = ca.mat_hypertable_id
  ORDER BY d.id
  LIMIT 1) d ON true
ORDER BY ca.mat_hypertable_id
