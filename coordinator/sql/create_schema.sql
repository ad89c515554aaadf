-- no parameters; creates the administrative schema in the target when it is missing.
-- hypertable_schema, hypertable_name and worked keep the meaning the spec's progress query
-- gives them; everything else is ours.
CREATE SCHEMA IF NOT EXISTS __backfill;
CREATE TABLE IF NOT EXISTS __backfill.task (
  task_id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  worked              tstzrange,         -- NULL while pending; when the copy ran, once done
  hypertable_schema   name NOT NULL,
  hypertable_name     name NOT NULL,
  chunk_schema        name NOT NULL,     -- the source chunk
  chunk_name          name NOT NULL,
  target_chunk_schema name NOT NULL,     -- created at stage with the same slices
  target_chunk_name   name NOT NULL,
  dimensions          jsonb NOT NULL,    -- {"column": [range_start, range_end], ...}
  time_column         name NOT NULL,
  time_type           text NOT NULL,
  until_internal      bigint,            -- NULL: the whole chunk; else only rows below it
  until_literal       text,
  copy_message        text,
  lease_epoch         bigint NOT NULL DEFAULT 0,  -- fencing token, bumped by every grant
  lease_holder        text,
  lease_expires_at    timestamptz,
  attempts            integer NOT NULL DEFAULT 0,
  last_error          text,
  rows_copied         bigint,
  bytes_copied        bigint,
  staged_at           timestamptz NOT NULL DEFAULT now(),
  UNIQUE (chunk_schema, chunk_name)
);
CREATE INDEX IF NOT EXISTS task_pending_idx ON __backfill.task (task_id) WHERE worked IS NULL;
-- Verification, leased to workers like copies (added after the first release of the table).
ALTER TABLE __backfill.task
  ADD COLUMN IF NOT EXISTS verified tstzrange,      -- NULL until this task's verify ran
  ADD COLUMN IF NOT EXISTS verify_matches boolean,
  ADD COLUMN IF NOT EXISTS verify_report jsonb;     -- the ChunkVerification, as JSON
-- The target session of the lease holder, so that an expired holder's transaction can be
-- ended before its task is granted again (a stopped worker's locks would block the next).
ALTER TABLE __backfill.task
  ADD COLUMN IF NOT EXISTS lease_backend_pid integer,
  ADD COLUMN IF NOT EXISTS lease_backend_start timestamptz;
CREATE INDEX IF NOT EXISTS task_lease_backend_idx ON __backfill.task (lease_expires_at)
  WHERE lease_backend_pid IS NOT NULL;
-- Largest chunks first, so the tail of a migration is short: the source chunk's size on disk
-- at stage time, and the order leases follow.
ALTER TABLE __backfill.task ADD COLUMN IF NOT EXISTS source_bytes bigint;
CREATE INDEX IF NOT EXISTS task_pending_size_idx
  ON __backfill.task (source_bytes DESC NULLS LAST, task_id) WHERE worked IS NULL;
-- How the user knows the hypertable: a continuous aggregate's view ("public.cm_hourly"), not
-- its materialization's internal name; NULL in tasks staged by earlier releases.
ALTER TABLE __backfill.task ADD COLUMN IF NOT EXISTS display_name text;
-- The range this tool last copied into the target chunk (set at completion, kept when a
-- widening or a repair re-opens the task), so the dual-write guard never mistakes the tool's
-- own rows for the application's. copied_*_literal NULL: the chunk's edge.
ALTER TABLE __backfill.task
  ADD COLUMN IF NOT EXISTS copied boolean NOT NULL DEFAULT false,
  ADD COLUMN IF NOT EXISTS copied_from_literal text,
  ADD COLUMN IF NOT EXISTS copied_until_literal text;
-- stage --from: rows before from_literal are not the task's (NULL: from the chunk's start).
ALTER TABLE __backfill.task
  ADD COLUMN IF NOT EXISTS from_internal bigint,
  ADD COLUMN IF NOT EXISTS from_literal text;
