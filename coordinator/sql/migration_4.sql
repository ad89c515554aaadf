-- no parameters; schema version 4.
-- A task whose attempts are used up waits for the next copy (or verify), which gives them
-- back. Until then a grant must not walk past it: a systematic failure (a privilege missing on
-- one large hypertable) can leave thousands of such tasks at the head of the grant order, and
-- every grant would read them all. gave_up is set with the attempt that uses them up (see
-- record_failure.sql and expire_leases.sql), cleared where the attempts are given back, and
-- the indexes grants look in leave those tasks out. Tasks that used up their attempts under an
-- earlier release keep gave_up = false: the grants' own attempts test still skips them.
ALTER TABLE __backfill.task ADD COLUMN IF NOT EXISTS gave_up boolean NOT NULL DEFAULT false;
DROP INDEX IF EXISTS __backfill.task_free_size_idx;
CREATE INDEX task_free_size_idx ON __backfill.task (source_bytes DESC NULLS LAST, task_id)
  WHERE worked IS NULL AND lease_holder IS NULL AND NOT gave_up;
DROP INDEX IF EXISTS __backfill.task_pending_by_hypertable_idx;
CREATE INDEX task_pending_by_hypertable_idx
  ON __backfill.task (hypertable_schema, hypertable_name, source_bytes DESC NULLS LAST, task_id)
  WHERE worked IS NULL AND NOT gave_up;
DROP INDEX IF EXISTS __backfill.task_verify_free_idx;
CREATE INDEX task_verify_free_idx ON __backfill.task (task_id)
  WHERE worked IS NOT NULL AND verified IS NULL AND NOT gave_up;
