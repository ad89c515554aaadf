-- no parameters
SELECT pg_catalog.to_regclass('__backfill.task') IS NOT NULL
