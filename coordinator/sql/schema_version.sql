-- no parameters; no row: version 0
SELECT version FROM __backfill.schema_version
