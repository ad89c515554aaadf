-- no parameters; schema version 5.
-- A done task used to name its last holder (lease_holder kept at completion, so that the
-- holder's report and a heartbeat that raced its commit were still recognised). Mid-migration
-- most tasks then name one, and the planner, which takes lease_holder and worked to be
-- independent, estimates "lease_holder IS NOT NULL AND worked IS NULL" (the leases held now,
-- a few hundred) as a quarter of the table: its plans for the sweeps that run every 250 ms
-- read every pending task through another index instead of task_held_idx, over a second
-- each at a million tasks. Completion now moves the holder's name to done_by, so that
-- lease_holder IS NOT NULL means held, and the holder is recognised by done_by and the epoch.
ALTER TABLE __backfill.task ADD COLUMN IF NOT EXISTS done_by text;
UPDATE __backfill.task
SET done_by = lease_holder, lease_holder = NULL
WHERE lease_holder IS NOT NULL AND lease_expires_at IS NULL AND worked IS NOT NULL;
ANALYZE __backfill.task;
