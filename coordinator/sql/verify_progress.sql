-- $1 max attempts (int), $2 now (timestamptz, the coordinator's clock)
-- Copied tasks, how many are verified, how many failed to verify, and how many differ; from
-- the maintained counts (create_schema.sql) and the few failing and leased tasks, by index.
SELECT coalesce(sum(done), 0) AS total,
       coalesce(sum(verified), 0) AS done,
       (SELECT count(*) FROM __backfill.task
        WHERE worked IS NOT NULL AND verified IS NULL AND attempts >= $1::int) AS failed,
       coalesce(sum(mismatches), 0) AS mismatches,
       (SELECT count(*) FROM __backfill.task
        WHERE lease_expires_at > $2::timestamptz AND lease_holder IS NOT NULL
          AND worked IS NOT NULL AND verified IS NULL) AS leased
FROM __backfill.task_count
