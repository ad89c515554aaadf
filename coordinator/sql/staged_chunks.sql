-- $1 hypertable schema (text), $2 hypertable name (text)
-- Source chunks of this hypertable that already have a task.
SELECT chunk_schema, chunk_name FROM __backfill.task
WHERE hypertable_schema = $1::name AND hypertable_name = $2::name
