-- $1 now (timestamptz, the coordinator's clock)
-- Leases whose holder's target session is gone (the worker was killed, or its connection
-- broke) expire now instead of at their time: that holder cannot commit anything any more,
-- and the epoch fences it out if it comes back. The next sweep gives them up
-- (expire_leases.sql), which leaves a live holder that lost only its session one progress
-- interval to report the failure (so that it counts as an attempt, with its back-off). The
-- session is matched by pid and start time.
UPDATE __backfill.task t
SET lease_expires_at = $1::timestamptz,
    lease_backend_pid = NULL
WHERE t.lease_backend_pid IS NOT NULL
  AND t.lease_expires_at > $1::timestamptz
  AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_stat_activity a
                  WHERE a.pid = t.lease_backend_pid AND a.backend_start = t.lease_backend_start)
