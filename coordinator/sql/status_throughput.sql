-- $1 window in seconds (float8)
-- What finished within the window, and over how long: the window, or less when the first of
-- those copies started later than the window's start.
SELECT count(*) AS chunks,
       coalesce(sum(rows_copied), 0) AS rows_copied,
       coalesce(sum(bytes_copied), 0) AS bytes_copied,
       coalesce(least($1::float8,
                      extract(epoch FROM clock_timestamp() - min(lower(worked)))::float8),
                0) AS seconds
FROM __backfill.task
WHERE upper(worked) > clock_timestamp() - $1::float8 * interval '1 second'
