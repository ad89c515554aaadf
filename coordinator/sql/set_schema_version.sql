-- $1 version (int)
INSERT INTO __backfill.schema_version (version) VALUES ($1::int)
ON CONFLICT (id) DO UPDATE SET version = excluded.version
