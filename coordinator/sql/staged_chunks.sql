-- $1 hypertable schema (text), $2 hypertable name (text)
-- Tasks already staged for this source hypertable, with the range each covers, and the range
-- this tool copied into the target chunk if it ever did ('' bounds: the chunk's edges; a
-- task worked before the copied columns existed copied its own range), and the chunk's time
-- range in internal units.
SELECT chunk_schema, chunk_name, task_id, until_internal IS NOT NULL AS cut,
       coalesce(until_internal, 0), coalesce(until_literal, ''),
       from_internal IS NOT NULL AS cut_from, coalesce(from_internal, 0),
       coalesce(from_literal, ''),
       copied OR worked IS NOT NULL AS copied,
       coalesce(CASE WHEN copied THEN copied_from_literal ELSE from_literal END, ''),
       coalesce(CASE WHEN copied THEN copied_until_literal ELSE until_literal END, ''),
       (dimensions -> time_column ->> 0)::bigint AS range_start,
       (dimensions -> time_column ->> 1)::bigint AS range_end
FROM __backfill.task
WHERE hypertable_schema = $1::name AND hypertable_name = $2::name
