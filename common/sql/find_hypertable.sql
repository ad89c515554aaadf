-- $1 schema name (text), $2 table name (text), $3 continuous-aggregate view schema (text),
-- $4 view name (text): with a view given, the materialization hypertable behind that view
-- (its name differs between databases), else the hypertable of that name.
SELECT h.id, h.schema_name, h.table_name
FROM _timescaledb_catalog.hypertable h
WHERE $3::text = '' AND h.schema_name = $1::name AND h.table_name = $2::name
UNION ALL
SELECT h.id, h.schema_name, h.table_name
FROM _timescaledb_catalog.continuous_agg ca
JOIN _timescaledb_catalog.hypertable h ON h.id = ca.mat_hypertable_id
WHERE $3::text <> '' AND ca.user_view_schema = $3::name AND ca.user_view_name = $4::name
