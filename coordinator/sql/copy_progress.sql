-- $1 max attempts (int), $2 now (timestamptz, the coordinator's clock)
-- From the maintained counts (create_schema.sql) and the few failing and leased tasks, found
-- by index: the cost does not grow with the number of tasks.
SELECT coalesce(sum(total), 0) AS total,
       coalesce(sum(done), 0) AS done,
       (SELECT count(*) FROM __backfill.task
        WHERE worked IS NULL AND attempts >= $1::int) AS failed,
       coalesce(sum(rows_copied), 0) AS rows_copied,
       coalesce(sum(bytes_copied), 0) AS bytes_copied,
       (SELECT count(*) FROM __backfill.task
        WHERE lease_expires_at > $2::timestamptz AND lease_holder IS NOT NULL
          AND worked IS NULL) AS leased
FROM __backfill.task_count
