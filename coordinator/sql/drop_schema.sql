-- no parameters
DROP SCHEMA IF EXISTS __backfill CASCADE
