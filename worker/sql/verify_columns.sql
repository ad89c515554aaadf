-- $1 table (quoted schema-qualified name as text)
-- Visible columns with the aggregates verify can compare on them: min/max and sum where
-- pg_catalog has them for the exact type, floats (whose sums depend on summation order), and
-- collatable types (compared under COLLATE "C" so both servers order bytes alike).
SELECT a.attname,
       EXISTS (SELECT 1 FROM pg_catalog.pg_proc p
               WHERE p.proname = 'min' AND p.prokind = 'a'
                 AND p.pronamespace = 'pg_catalog'::regnamespace
                 AND p.proargtypes[0] = a.atttypid) AS has_minmax,
       EXISTS (SELECT 1 FROM pg_catalog.pg_proc p
               WHERE p.proname = 'sum' AND p.prokind = 'a'
                 AND p.pronamespace = 'pg_catalog'::regnamespace
                 AND p.proargtypes[0] = a.atttypid) AS has_sum,
       a.atttypid IN ('pg_catalog.float4'::regtype, 'pg_catalog.float8'::regtype) AS is_float,
       t.typcollation <> 0 AS collatable
FROM pg_catalog.pg_attribute a
JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
WHERE a.attrelid = $1::text::regclass AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
