-- $1 until (text), $2 time column type (regtype rendered as text)
-- The value in TimescaleDB's internal units and its canonical text, parsed in the pinned
-- session (TimeZone UTC, DateStyle ISO). Casting errors (22xxx) mean the value does not fit.
SELECT CASE $2::text
         WHEN 'timestamp with time zone' THEN _timescaledb_functions.time_to_internal($1::text::timestamptz)
         WHEN 'timestamp without time zone' THEN _timescaledb_functions.time_to_internal($1::text::timestamp)
         WHEN 'date' THEN _timescaledb_functions.time_to_internal($1::text::date)
         WHEN 'smallint' THEN $1::text::smallint::bigint
         WHEN 'integer' THEN $1::text::integer::bigint
         WHEN 'bigint' THEN $1::text::bigint
       END AS internal,
       CASE $2::text
         WHEN 'timestamp with time zone' THEN $1::text::timestamptz::text
         WHEN 'timestamp without time zone' THEN $1::text::timestamp::text
         WHEN 'date' THEN $1::text::date::text
         WHEN 'smallint' THEN $1::text::smallint::text
         WHEN 'integer' THEN $1::text::integer::text
         WHEN 'bigint' THEN $1::text::bigint::text
       END AS literal
