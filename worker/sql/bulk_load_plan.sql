-- $1 chunk schema (text), $2 chunk name (text)
-- Whether a whole plain chunk can be loaded the way pg_restore loads a table: emptied by
-- TRUNCATE (a new, empty file, so COPY FREEZE may write its rows frozen), its own indexes
-- dropped, the rows copied, the indexes built again in bulk. One row: `refusal`, why not (NULL
-- when it can), the same for every chunk of a hypertable; the session's lock_timeout, to be
-- put back after the chunk's lock is taken; then one row per index to rebuild:
-- its qualified name, the statement that builds it, its bare name if the table is clustered
-- on it (else NULL), its tablespace ('' for the database's default: default_tablespace is set
-- to it before the build, as pg_dump does); a single row with a NULL name when there is none.
-- Indexes that back a constraint (primary key, unique, exclusion; a foreign key elsewhere
-- may use one), the replica identity, an invalid one, one with per-column statistics targets,
-- a comment or any object depending on it stay as they are and are kept up row by row.
WITH chunk AS (
  SELECT c.oid, c.relowner, h.oid AS hypertable
  FROM pg_catalog.pg_class c
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
  JOIN pg_catalog.pg_inherits i ON i.inhrelid = c.oid
  JOIN pg_catalog.pg_class h ON h.oid = i.inhparent
  WHERE n.nspname = $1::name AND c.relname = $2::name
),
rebuilt AS (
  SELECT x.indexrelid,
         CASE WHEN xc.reltablespace = 0 THEN true
              ELSE pg_catalog.has_tablespace_privilege(xc.reltablespace, 'CREATE')
         END AS creatable,
         format('%I.%I', xn.nspname, xc.relname) AS name,
         CASE WHEN x.indisclustered THEN quote_ident(xc.relname) END AS clustered,
         pg_catalog.pg_get_indexdef(x.indexrelid) AS definition,
         coalesce((SELECT spcname::text FROM pg_catalog.pg_tablespace
                   WHERE oid = xc.reltablespace), '') AS tablespace
  FROM chunk
  JOIN pg_catalog.pg_index x ON x.indrelid = chunk.oid
  JOIN pg_catalog.pg_class xc ON xc.oid = x.indexrelid
  JOIN pg_catalog.pg_namespace xn ON xn.oid = xc.relnamespace
  WHERE x.indisvalid AND x.indisready AND x.indislive AND NOT x.indisreplident
    AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint k WHERE k.conindid = x.indexrelid)
    AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute a
                    WHERE a.attrelid = x.indexrelid AND a.attstattarget >= 0)
    AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_description d
                    WHERE d.classoid = 'pg_catalog.pg_class'::regclass
                      AND d.objoid = x.indexrelid)
    AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                    WHERE d.refclassid = 'pg_catalog.pg_class'::regclass
                      AND d.refobjid = x.indexrelid AND d.deptype IN ('n', 'a'))
)
SELECT CASE
         WHEN NOT pg_catalog.pg_has_role(chunk.relowner, 'USAGE')
           THEN format('the target user %s does not own it', current_user)
         WHEN EXISTS (SELECT 1 FROM pg_catalog.pg_constraint f
                      WHERE f.contype = 'f' AND f.confrelid IN (chunk.hypertable, chunk.oid))
           THEN 'foreign keys of other tables reference it'
         -- TimescaleDB builds a chunk's indexes as its catalog owner; whoever builds them
         -- again needs CREATE where they live.
         WHEN EXISTS (SELECT 1 FROM rebuilt)
              AND NOT pg_catalog.has_schema_privilege($1::name, 'CREATE')
           THEN format('the target user %s may not create indexes in schema %I '
                       '(GRANT CREATE ON SCHEMA %I)', current_user, $1::text, $1::text)
         WHEN EXISTS (SELECT 1 FROM rebuilt WHERE NOT creatable)
           THEN format('the target user %s may not create indexes in their tablespace',
                       current_user)
       END AS refusal,
       pg_catalog.current_setting('lock_timeout') AS lock_timeout,
       r.name, r.definition, r.clustered, r.tablespace
FROM chunk
LEFT JOIN rebuilt r ON true
ORDER BY r.name
