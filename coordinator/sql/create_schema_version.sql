-- no parameters
-- The version of __backfill's layout (one row), which numbered migrations move forward. A
-- target staged by a release before versions existed has none: it is version 0.
CREATE SCHEMA IF NOT EXISTS __backfill;
CREATE TABLE IF NOT EXISTS __backfill.schema_version (
  id      boolean PRIMARY KEY DEFAULT true CHECK (id),
  version integer NOT NULL
);
