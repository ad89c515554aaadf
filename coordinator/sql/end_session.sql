-- $1 backend pid (int), $2 backend start (timestamptz)
-- Ends the target session of an expired lease's holder, matched by pid and start time so that
-- a reused pid is never hit. One row, true if a session was ended; no row if it is gone.
SELECT pg_catalog.pg_terminate_backend(pid)
FROM pg_catalog.pg_stat_activity
WHERE pid = $1::int AND backend_start = $2::timestamptz
