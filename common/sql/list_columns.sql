-- $1 table (schema-qualified, quoted name as text)
-- Visible columns in physical order, with whether their type has binary COPY I/O, whether
-- they are NOT NULL, and whether a row inserted without them gets a value (a default, an
-- identity or a generated column).
SELECT a.attname,
       format_type(a.atttypid, a.atttypmod) AS type,
       (t.typsend::oid <> 0 AND t.typreceive::oid <> 0) AS binary_io,
       a.attnotnull,
       (a.atthasdef OR a.attidentity <> '' OR a.attgenerated <> '') AS has_default
FROM pg_catalog.pg_attribute a
JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
WHERE a.attrelid = $1::text::regclass AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
