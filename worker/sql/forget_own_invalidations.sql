-- $1 chunk schema (text), $2 chunk name (text)
-- Removes the continuous-aggregate invalidations this transaction logged for the chunk's
-- hypertable. TRUNCATE of a chunk logs its whole range on TimescaleDB before 2.28 even when the
-- copy's rows are kept out of the log (session_replication_role = replica, superusers only);
-- this keeps a bulk-loaded chunk's log as a row-by-row copy leaves it: refresh-caggs brings
-- the aggregates up to date afterwards.
DELETE FROM _timescaledb_catalog.continuous_aggs_hypertable_invalidation_log l
USING _timescaledb_catalog.chunk c
WHERE c.schema_name = $1::name AND c.table_name = $2::name
  AND l.hypertable_id = c.hypertable_id
  AND l.xmin = pg_catalog.pg_current_xact_id()::xid
