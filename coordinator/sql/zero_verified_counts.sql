-- no parameters; after reset_verify.sql, in its transaction: no task is verified any more.
UPDATE __backfill.task_count SET verified = 0, mismatches = 0
WHERE verified <> 0 OR mismatches <> 0
