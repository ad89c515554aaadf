-- $1 a time value in TimescaleDB's internal units (bigint), $2 the column type (regtype text)
-- Its canonical text in that type, or NULL at (or below) the type's minimum: the watermark of
-- a continuous aggregate never refreshed, which means "from the start".
SELECT CASE
         WHEN $1::bigint <= CASE $2::text
                              WHEN 'smallint' THEN -32768
                              WHEN 'integer' THEN -2147483648
                              WHEN 'bigint' THEN -9223372036854775808
                              ELSE -210866803200000000
                            END THEN NULL
         WHEN $2::text = 'timestamp with time zone'
           THEN _timescaledb_functions.to_timestamp($1::bigint)::text
         WHEN $2::text = 'timestamp without time zone'
           THEN _timescaledb_functions.to_timestamp_without_timezone($1::bigint)::text
         WHEN $2::text = 'date' THEN _timescaledb_functions.to_date($1::bigint)::text
         ELSE $1::bigint::text
       END
