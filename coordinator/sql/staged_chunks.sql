-- $1 hypertable schema (text), $2 hypertable name (text)
-- Tasks already staged for this source hypertable, with the range each covers and whether
-- it was copied.
SELECT chunk_schema, chunk_name, task_id, until_internal IS NOT NULL AS cut,
       coalesce(until_internal, 0), coalesce(until_literal, ''), worked IS NOT NULL AS worked,
       from_internal IS NOT NULL AS cut_from, coalesce(from_internal, 0),
       coalesce(from_literal, '')
FROM __backfill.task
WHERE hypertable_schema = $1::name AND hypertable_name = $2::name
