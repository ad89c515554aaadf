-- $1 schema name (text), $2 table name (text)
SELECT h.id FROM _timescaledb_catalog.hypertable h
WHERE h.schema_name = $1::name AND h.table_name = $2::name
