-- no parameters
-- Connections still open to ordinary users: max_connections less the reserved ones and those
-- in use.
SELECT current_setting('max_connections')::int
       - current_setting('superuser_reserved_connections')::int
       - (SELECT count(*) FROM pg_catalog.pg_stat_activity WHERE backend_type = 'client backend')
