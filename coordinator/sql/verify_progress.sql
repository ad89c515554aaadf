-- $1 max attempts (int)
-- Copied tasks, how many are verified, how many failed to verify, and how many differ.
SELECT count(*) AS total,
       count(verified) AS done,
       count(*) FILTER (WHERE verified IS NULL AND attempts >= $1::int) AS failed,
       count(*) FILTER (WHERE verify_matches = false) AS mismatches,
       count(*) FILTER (WHERE verified IS NULL AND lease_holder IS NOT NULL
                        AND lease_expires_at > clock_timestamp()) AS leased
FROM __backfill.task
WHERE worked IS NOT NULL
