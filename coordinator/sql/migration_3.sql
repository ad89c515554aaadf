-- no parameters; schema version 3.
-- Heartbeats extend lease_expires_at many times a second at scale. An index that names that
-- column (as key or in its predicate) makes each of them write a new entry into every index of
-- the task table, and grants then wade through the dead entries. No index names it now, so a
-- heartbeat is a HOT update in place (the table keeps room on its pages for that); the few
-- leased tasks are found through indexes on who holds them instead.
ALTER TABLE __backfill.task SET (fillfactor = 80);
DROP INDEX IF EXISTS __backfill.task_leased_idx;
DROP INDEX IF EXISTS __backfill.task_lease_backend_idx;
-- Copies held (leased now, or expired and not granted again yet), and verifications held.
CREATE INDEX IF NOT EXISTS task_held_idx ON __backfill.task (task_id)
  WHERE lease_holder IS NOT NULL AND worked IS NULL;
CREATE INDEX IF NOT EXISTS task_verify_held_idx ON __backfill.task (task_id)
  WHERE lease_holder IS NOT NULL AND worked IS NOT NULL AND verified IS NULL;
-- Leases whose holder reported its target session, for the sweeps.
CREATE INDEX IF NOT EXISTS task_session_idx ON __backfill.task (task_id)
  WHERE lease_backend_pid IS NOT NULL;
-- Pending tasks nobody holds, largest first: where a grant looks first, without walking past
-- the tasks workers hold.
CREATE INDEX IF NOT EXISTS task_free_size_idx
  ON __backfill.task (source_bytes DESC NULLS LAST, task_id)
  WHERE worked IS NULL AND lease_holder IS NULL;
-- Copied tasks not verified yet, in task order: where a verification lease looks.
CREATE INDEX IF NOT EXISTS task_verify_free_idx ON __backfill.task (task_id)
  WHERE worked IS NOT NULL AND verified IS NULL;
