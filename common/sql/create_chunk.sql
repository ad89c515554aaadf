-- $1 hypertable (quoted schema-qualified name as text), $2 slices (a JSON array of objects
--    {"column": [range_start, range_end], ...} in internal units, one per chunk)
-- Creates the chunks in one round trip, in the array's order. Idempotent: an identical
-- hypercube returns the existing chunk with created = false.
SELECT c.schema_name, c.table_name, c.created
FROM jsonb_array_elements($2::text::jsonb) WITH ORDINALITY AS s(slices, n)
CROSS JOIN LATERAL _timescaledb_functions.create_chunk($1::text::regclass, s.slices) c
ORDER BY s.n
