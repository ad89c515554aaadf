-- $1 target chunk schema (text), $2 target chunk name (text), $3 source chunk status (int)
-- Gives the target chunk the source chunk's UNORDERED (2) and PARTIAL (8) status bits, in the
-- copy transaction. UNORDERED changes query results: batches copied as they are from an
-- unordered chunk and registered as ordered return wrong ORDER BY answers. TimescaleDB's
-- catalog is writable by superusers only.
UPDATE _timescaledb_catalog.chunk
SET status = (status & ~10) | ($3::int & 10)
WHERE schema_name = $1::name AND table_name = $2::name
  AND status <> ((status & ~10) | ($3::int & 10))
