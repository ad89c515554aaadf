-- $1 max attempts (int)
SELECT count(*) AS total,
       count(worked) AS done,
       count(*) FILTER (WHERE worked IS NULL AND attempts >= $1::int) AS failed,
       coalesce(sum(rows_copied), 0) AS rows_copied,
       coalesce(sum(bytes_copied), 0) AS bytes_copied,
       count(*) FILTER (WHERE worked IS NULL AND lease_holder IS NOT NULL
                        AND lease_expires_at > clock_timestamp()) AS leased
FROM __backfill.task
