-- no parameters; __backfill.task must exist
-- How far this tool copied each hypertable's rows, by the name the user knows it by (a
-- continuous aggregate's view): the end of its done tasks, stopped at the first task not yet
-- done, in internal units. Only hypertables with a task done.
SELECT display_name,
       least(max(least((dimensions -> time_column ->> 1)::bigint, until_internal))
               FILTER (WHERE worked IS NOT NULL),
             min(greatest((dimensions -> time_column ->> 0)::bigint, from_internal))
               FILTER (WHERE worked IS NULL)) AS copied_until
FROM __backfill.task
WHERE display_name IS NOT NULL
GROUP BY display_name
HAVING bool_or(worked IS NOT NULL)
