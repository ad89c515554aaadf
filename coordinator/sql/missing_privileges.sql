-- $1 tables: JSON array of qualified names, $2 privilege
-- The tables on which the current user lacks the privilege.
SELECT name
FROM jsonb_array_elements_text($1::text::jsonb) AS name
WHERE NOT pg_catalog.has_table_privilege(name, $2::text)
