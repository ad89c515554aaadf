-- $1 relation (quoted schema-qualified name as text)
SELECT pg_catalog.to_regclass($1::text) IS NOT NULL
