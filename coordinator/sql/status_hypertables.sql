-- no parameters
-- Per hypertable: the spec's progress query (total and finished chunks), with pending counted
-- as the chunks not yet worked, plus what is in flight, failing, copied and verified.
SELECT hypertable_schema,
       hypertable_name,
       count(*) AS total_chunks,
       count(worked) AS finished_chunks,
       count(*) FILTER (WHERE worked IS NULL) AS pending_chunks,
       -- held by a live session (as status_leases.sql)
       count(*) FILTER (WHERE lease_holder IS NOT NULL
                        AND lease_expires_at > clock_timestamp()
                        AND (lease_backend_pid IS NULL
                             OR EXISTS (SELECT 1 FROM pg_catalog.pg_stat_activity a
                                        WHERE a.pid = lease_backend_pid
                                          AND a.backend_start = lease_backend_start)))
         AS in_progress,
       count(*) FILTER (WHERE worked IS NULL AND last_error IS NOT NULL) AS failing,
       coalesce(sum(rows_copied), 0) AS rows_copied,
       coalesce(sum(bytes_copied), 0) AS bytes_copied,
       count(verified) AS verified,
       count(*) FILTER (WHERE verify_matches = false) AS differ,
       -- a continuous aggregate by its view, not its materialization's internal name
       coalesce(max(display_name), format('%I.%I', hypertable_schema, hypertable_name))
         AS display_name
FROM __backfill.task
GROUP BY 1, 2
ORDER BY 1, 2
