-- $1 target chunk schema (text), $2 target chunk name (text)
-- Carries into one aggregate's log take turns, each until its copy commits: two chunks cutting
-- the same entry at once would each miss the pieces the other put back (a statement does not
-- see rows committed after it started). Run as its own statement, before the carry's, so the
-- carry's snapshot follows the previous carry's commit.
SELECT pg_catalog.pg_advisory_xact_lock(7364921, c.hypertable_id)
FROM _timescaledb_catalog.chunk c
WHERE c.schema_name = $1::name AND c.table_name = $2::name
