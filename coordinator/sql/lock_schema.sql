-- no parameters
-- Migrations of __backfill take turns (two coordinators, or a stage beside a copy): held until
-- the migrating transaction ends.
SELECT pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('__backfill schema migration'))
