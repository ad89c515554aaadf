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
-- Counts kept as tasks change, in the transactions that change them, so that progress costs
-- the same at a million tasks as at a thousand: per hypertable, spread over 16 rows (by task
-- id) so that concurrent completions rarely wait for one another. Statements that add or drop
-- tasks add their rows' counts at once; an update that changes what is counted adds the
-- difference, row by row.
DO $counts$
BEGIN
  IF to_regclass('__backfill.task_count') IS NOT NULL THEN
    RETURN;
  END IF;
  CREATE TABLE __backfill.task_count (
    hypertable_schema name NOT NULL,
    hypertable_name   name NOT NULL,
    shard             integer NOT NULL,
    total             bigint NOT NULL DEFAULT 0,
    done              bigint NOT NULL DEFAULT 0,  -- worked
    rows_copied       bigint NOT NULL DEFAULT 0,
    bytes_copied      bigint NOT NULL DEFAULT 0,
    verified          bigint NOT NULL DEFAULT 0,
    mismatches        bigint NOT NULL DEFAULT 0,  -- verify_matches = false
    PRIMARY KEY (hypertable_schema, hypertable_name, shard));

  CREATE FUNCTION __backfill.count_tasks() RETURNS trigger LANGUAGE plpgsql AS $f$
  BEGIN
    IF TG_OP = 'INSERT' THEN
      INSERT INTO __backfill.task_count AS c
      SELECT hypertable_schema, hypertable_name, (task_id % 16)::int, count(*), count(worked),
             coalesce(sum(rows_copied), 0), coalesce(sum(bytes_copied), 0), count(verified),
             count(*) FILTER (WHERE verify_matches = false)
      FROM added GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
      ON CONFLICT (hypertable_schema, hypertable_name, shard) DO UPDATE
      SET total = c.total + excluded.total, done = c.done + excluded.done,
          rows_copied = c.rows_copied + excluded.rows_copied,
          bytes_copied = c.bytes_copied + excluded.bytes_copied,
          verified = c.verified + excluded.verified, mismatches = c.mismatches + excluded.mismatches;
    ELSIF TG_OP = 'DELETE' THEN
      UPDATE __backfill.task_count c
      SET total = c.total - d.total, done = c.done - d.done,
          rows_copied = c.rows_copied - d.rows_copied, bytes_copied = c.bytes_copied - d.bytes_copied,
          verified = c.verified - d.verified, mismatches = c.mismatches - d.mismatches
      FROM (SELECT hypertable_schema, hypertable_name, (task_id % 16)::int AS shard,
                   count(*) AS total, count(worked) AS done,
                   coalesce(sum(rows_copied), 0) AS rows_copied,
                   coalesce(sum(bytes_copied), 0) AS bytes_copied, count(verified) AS verified,
                   count(*) FILTER (WHERE verify_matches = false) AS mismatches
            FROM removed GROUP BY 1, 2, 3) d
      WHERE c.hypertable_schema = d.hypertable_schema AND c.hypertable_name = d.hypertable_name
        AND c.shard = d.shard;
    ELSE  -- UPDATE, one row
      UPDATE __backfill.task_count c
      SET done = c.done + (NEW.worked IS NOT NULL)::int - (OLD.worked IS NOT NULL)::int,
          rows_copied = c.rows_copied + coalesce(NEW.rows_copied, 0) - coalesce(OLD.rows_copied, 0),
          bytes_copied = c.bytes_copied + coalesce(NEW.bytes_copied, 0)
                         - coalesce(OLD.bytes_copied, 0),
          verified = c.verified + (NEW.verified IS NOT NULL)::int - (OLD.verified IS NOT NULL)::int,
          mismatches = c.mismatches + (NEW.verify_matches IS NOT DISTINCT FROM false)::int
                       - (OLD.verify_matches IS NOT DISTINCT FROM false)::int
      WHERE c.hypertable_schema = NEW.hypertable_schema AND c.hypertable_name = NEW.hypertable_name
        AND c.shard = (NEW.task_id % 16)::int;
    END IF;
    RETURN NULL;
  END
  $f$;

  -- The task table as it stands, counted once, with nothing changing it meanwhile.
  LOCK TABLE __backfill.task IN SHARE ROW EXCLUSIVE MODE;
  INSERT INTO __backfill.task_count
  SELECT hypertable_schema, hypertable_name, (task_id % 16)::int, count(*), count(worked),
         coalesce(sum(rows_copied), 0), coalesce(sum(bytes_copied), 0), count(verified),
         count(*) FILTER (WHERE verify_matches = false)
  FROM __backfill.task GROUP BY 1, 2, 3;
  CREATE TRIGGER task_count_insert AFTER INSERT ON __backfill.task
    REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION __backfill.count_tasks();
  CREATE TRIGGER task_count_delete AFTER DELETE ON __backfill.task
    REFERENCING OLD TABLE AS removed FOR EACH STATEMENT EXECUTE FUNCTION __backfill.count_tasks();
  CREATE TRIGGER task_count_update
    AFTER UPDATE OF worked, rows_copied, bytes_copied, verified, verify_matches ON __backfill.task
    FOR EACH ROW
    WHEN (OLD.worked IS DISTINCT FROM NEW.worked
          OR OLD.rows_copied IS DISTINCT FROM NEW.rows_copied
          OR OLD.bytes_copied IS DISTINCT FROM NEW.bytes_copied
          OR OLD.verified IS DISTINCT FROM NEW.verified
          OR OLD.verify_matches IS DISTINCT FROM NEW.verify_matches)
    EXECUTE FUNCTION __backfill.count_tasks();
  -- Also in sessions that set session_replication_role = replica (the copy does, on 2.22, to
  -- keep its rows out of the invalidation log), where ordinary triggers do not fire.
  ALTER TABLE __backfill.task ENABLE ALWAYS TRIGGER task_count_insert;
  ALTER TABLE __backfill.task ENABLE ALWAYS TRIGGER task_count_delete;
  ALTER TABLE __backfill.task ENABLE ALWAYS TRIGGER task_count_update;
END
$counts$;
-- Failing and leased tasks are few: found through these, not by scanning every task.
CREATE INDEX IF NOT EXISTS task_pending_attempts_idx ON __backfill.task (attempts)
  WHERE worked IS NULL;
CREATE INDEX IF NOT EXISTS task_unverified_attempts_idx ON __backfill.task (attempts)
  WHERE worked IS NOT NULL AND verified IS NULL;
-- Each hypertable's best pending task, for a lease under --max-chunks-per-hypertable.
CREATE INDEX IF NOT EXISTS task_pending_by_hypertable_idx
  ON __backfill.task (hypertable_schema, hypertable_name, source_bytes DESC NULLS LAST, task_id)
  WHERE worked IS NULL;
CREATE INDEX IF NOT EXISTS task_leased_idx ON __backfill.task (lease_expires_at)
  WHERE lease_expires_at IS NOT NULL;
