-- $1 target hypertables: JSON array of qualified names (any quoting regclass accepts)
-- Background jobs scheduled on those hypertables or on any continuous aggregate built on them
-- (hierarchies followed): refresh, retention and compression policies would run while the
-- backfill writes. One row per job, with what it works on.
WITH RECURSIVE related(id) AS (
  SELECT h.id FROM _timescaledb_catalog.hypertable h
  WHERE format('%I.%I', h.schema_name, h.table_name)::regclass
        IN (SELECT jsonb_array_elements_text($1::text::jsonb)::regclass)
  UNION
  SELECT ca.mat_hypertable_id FROM _timescaledb_catalog.continuous_agg ca
  JOIN related r ON ca.raw_hypertable_id = r.id
)
SELECT j.id,
       j.proc_name,
       coalesce((SELECT 'continuous aggregate ' || format('%I.%I', ca.user_view_schema,
                                                             ca.user_view_name)
                 FROM _timescaledb_catalog.continuous_agg ca
                 WHERE ca.mat_hypertable_id = j.hypertable_id),
                'hypertable ' || format('%I.%I', h.schema_name, h.table_name)) AS works_on
FROM _timescaledb_config.bgw_job j
JOIN _timescaledb_catalog.hypertable h ON h.id = j.hypertable_id
WHERE j.scheduled AND j.hypertable_id IN (SELECT id FROM related)
ORDER BY j.id
