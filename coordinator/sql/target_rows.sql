-- $1 target hypertable id (int), $2 planned chunks (a JSON array of objects {"chunk": source
--    chunk for messages, "slices": {"column": [range_start, range_end], ...}, "from" and
--    "until": the range copy would replace (null: the chunk's edge), "copied": whether this
--    tool copied part of it already, "copied_from" and "copied_until": that part (null: the
--    chunk's edge)}), $3 time column (name), $4 time type (one of the types --until
--    supports, as regtype text)
-- $5 at most this many chunks (int)
-- The rows copy would replace in the target that this tool did not copy: per target chunk
-- with the same hypercube, their count and time range. Only non-empty chunks are counted, so
-- a target prepared from a schema dump (every chunk empty) costs one catalog read.
WITH planned AS (
  SELECT p->>'chunk' AS chunk, p->'slices' AS slices, p->>'from' AS from_literal,
         p->>'until' AS until_literal, (p->>'copied')::bool AS copied,
         p->>'copied_from' AS copied_from, p->>'copied_until' AS copied_until
  FROM jsonb_array_elements($2::text::jsonb) p
), target_chunk AS (
  SELECT to_regclass(format('%I.%I', c.schema_name, c.table_name)) AS rel,
         (SELECT to_regclass(format('%I.%I', z.schema_name, z.table_name))
          FROM _timescaledb_catalog.chunk z WHERE z.id = c.compressed_chunk_id) AS compressed_rel,
         (SELECT jsonb_object_agg(d.column_name, jsonb_build_array(s.range_start, s.range_end))
          FROM _timescaledb_catalog.chunk_constraint cc
          JOIN _timescaledb_catalog.dimension_slice s ON s.id = cc.dimension_slice_id
          JOIN _timescaledb_catalog.dimension d ON d.id = s.dimension_id
          WHERE cc.chunk_id = c.id) AS slices
  FROM _timescaledb_catalog.chunk c
  WHERE c.hypertable_id = $1::int AND NOT c.osm_chunk
)
SELECT p.chunk, t.rel::text AS target_chunk,
       (xpath('/row/n/text()', r.result))[1]::text::bigint AS n,
       (xpath('/row/lo/text()', r.result))[1]::text AS lo,
       (xpath('/row/hi/text()', r.result))[1]::text AS hi
FROM planned p
JOIN target_chunk t ON t.slices = p.slices
-- OFFSET 0 keeps the subquery apart, so each chunk is counted once.
CROSS JOIN LATERAL (
  SELECT query_to_xml(format(
           'SELECT count(*) AS n, min(%1$I)::text AS lo, max(%1$I)::text AS hi FROM %2$s '
           'WHERE true%3$s%4$s%5$s', $3::text, t.rel,
           CASE WHEN p.from_literal IS NOT NULL
                THEN format(' AND %I >= %L::%s', $3::text, p.from_literal, $4::text) END,
           CASE WHEN p.until_literal IS NOT NULL
                THEN format(' AND %I < %L::%s', $3::text, p.until_literal, $4::text) END,
           CASE WHEN p.copied THEN format(' AND NOT (true%s%s)',
             CASE WHEN p.copied_from IS NOT NULL
                  THEN format(' AND %I >= %L::%s', $3::text, p.copied_from, $4::text) END,
             CASE WHEN p.copied_until IS NOT NULL
                  THEN format(' AND %I < %L::%s', $3::text, p.copied_until, $4::text) END)
           END),
           false, true, '') AS result
  OFFSET 0) r
WHERE t.rel IS NOT NULL
  AND (pg_catalog.pg_relation_size(t.rel) > 0
       OR coalesce(pg_catalog.pg_relation_size(t.compressed_rel), 0) > 0)
  AND (xpath('/row/n/text()', r.result))[1]::text::bigint > 0
-- Enough to name the problem: counting stops after $5 chunks with rows, so a target that
-- holds the whole range (copied before a clean) is not read end to end.
LIMIT $5::int
