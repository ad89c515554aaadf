-- $1 hypertable (quoted schema-qualified name as text), $2 slices (jsonb as text:
--    {"column": [range_start, range_end], ...} in internal units)
-- Idempotent: an identical hypercube returns the existing chunk with created = false.
SELECT schema_name, table_name, created
FROM _timescaledb_functions.create_chunk($1::text::regclass, $2::text::jsonb)
