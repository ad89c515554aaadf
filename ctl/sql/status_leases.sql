-- no parameters
-- Leases in force: which worker holds which chunk, for what, and until when.
SELECT lease_holder,
       format('%I.%I', chunk_schema, chunk_name) AS chunk,
       CASE WHEN worked IS NULL THEN 'copy' ELSE 'verify' END AS work,
       extract(epoch FROM lease_expires_at - clock_timestamp())::float8 AS expires_in_seconds,
       lease_epoch
FROM __backfill.task
WHERE lease_holder IS NOT NULL AND lease_expires_at > clock_timestamp()
ORDER BY lease_holder, task_id
