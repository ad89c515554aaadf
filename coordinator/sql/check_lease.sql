-- $1 task id (bigint), $2 worker id (text), $3 lease epoch (bigint)
-- Whether this worker holds (or held, until it completed) the task at this epoch.
SELECT EXISTS (SELECT 1 FROM __backfill.task
               WHERE task_id = $1::bigint AND lease_epoch = $3::bigint
                 AND (lease_holder = $2::text OR done_by = $2::text))
