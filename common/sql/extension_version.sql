-- no parameters; one row with the installed TimescaleDB version, or no row without it
SELECT extversion FROM pg_catalog.pg_extension WHERE extname = 'timescaledb'
