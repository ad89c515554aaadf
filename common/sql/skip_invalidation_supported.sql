-- no parameters; how this database can keep a transaction's writes out of the
-- continuous-aggregate invalidation log: 'guc' (timescaledb.skip_cagg_invalidation, 2.28
-- and later), 'replica' (session_replication_role = replica silences the invalidation
-- trigger of 2.22; superusers only), or 'none'
SELECT CASE
         WHEN EXISTS (SELECT 1 FROM pg_catalog.pg_settings
                      WHERE name = 'timescaledb.skip_cagg_invalidation') THEN 'guc'
         WHEN EXISTS (SELECT 1 FROM pg_catalog.pg_proc p
                      JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
                      WHERE n.nspname = '_timescaledb_functions'
                        AND p.proname = 'continuous_agg_invalidation_trigger')
              AND (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user)
           THEN 'replica'
         ELSE 'none'
       END
