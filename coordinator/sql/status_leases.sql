-- no parameters
-- Leases in force: which worker holds which chunk, for what, and until when. A lease whose
-- holder's target session is gone (a killed or aborted worker) is not in force, whatever its
-- expiry says: its transaction is over.
SELECT lease_holder,
       format('%I.%I', chunk_schema, chunk_name) AS chunk,
       CASE WHEN worked IS NULL THEN 'copy' ELSE 'verify' END AS work,
       extract(epoch FROM lease_expires_at - clock_timestamp())::float8 AS expires_in_seconds,
       lease_epoch
FROM __backfill.task
WHERE lease_holder IS NOT NULL AND lease_expires_at > clock_timestamp()
  AND (lease_backend_pid IS NULL
       OR EXISTS (SELECT 1 FROM pg_catalog.pg_stat_activity a
                  WHERE a.pid = lease_backend_pid AND a.backend_start = lease_backend_start))
ORDER BY lease_holder, task_id
