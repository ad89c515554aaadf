-- no parameters; schema version 2.
-- A statement that changes the counted columns of very many tasks at once (verify's reset of
-- every copied task) makes the row-level count trigger update each count row hundreds of
-- times in one transaction, and each update walks the versions the earlier ones left: minutes
-- at a million tasks. Such a statement sets backfill.counts_by_statement = 'on' (SET LOCAL)
-- and corrects the counts itself in the same transaction; the trigger then leaves them alone.
CREATE OR REPLACE FUNCTION __backfill.count_tasks() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN
  IF TG_OP = 'INSERT' THEN
    INSERT INTO __backfill.task_count AS c
    SELECT hypertable_schema, hypertable_name, (task_id % 16)::int, count(*), count(worked),
           coalesce(sum(rows_copied), 0), coalesce(sum(bytes_copied), 0), count(verified),
           count(*) FILTER (WHERE verify_matches = false)
    FROM added GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
    ON CONFLICT (hypertable_schema, hypertable_name, shard) DO UPDATE
    SET total = c.total + excluded.total, done = c.done + excluded.done,
        rows_copied = c.rows_copied + excluded.rows_copied,
        bytes_copied = c.bytes_copied + excluded.bytes_copied,
        verified = c.verified + excluded.verified, mismatches = c.mismatches + excluded.mismatches;
  ELSIF TG_OP = 'DELETE' THEN
    UPDATE __backfill.task_count c
    SET total = c.total - d.total, done = c.done - d.done,
        rows_copied = c.rows_copied - d.rows_copied, bytes_copied = c.bytes_copied - d.bytes_copied,
        verified = c.verified - d.verified, mismatches = c.mismatches - d.mismatches
    FROM (SELECT hypertable_schema, hypertable_name, (task_id % 16)::int AS shard,
                 count(*) AS total, count(worked) AS done,
                 coalesce(sum(rows_copied), 0) AS rows_copied,
                 coalesce(sum(bytes_copied), 0) AS bytes_copied, count(verified) AS verified,
                 count(*) FILTER (WHERE verify_matches = false) AS mismatches
          FROM removed GROUP BY 1, 2, 3) d
    WHERE c.hypertable_schema = d.hypertable_schema AND c.hypertable_name = d.hypertable_name
      AND c.shard = d.shard;
  ELSIF current_setting('backfill.counts_by_statement', true) IS DISTINCT FROM 'on' THEN
    -- UPDATE, one row
    UPDATE __backfill.task_count c
    SET done = c.done + (NEW.worked IS NOT NULL)::int - (OLD.worked IS NOT NULL)::int,
        rows_copied = c.rows_copied + coalesce(NEW.rows_copied, 0) - coalesce(OLD.rows_copied, 0),
        bytes_copied = c.bytes_copied + coalesce(NEW.bytes_copied, 0)
                       - coalesce(OLD.bytes_copied, 0),
        verified = c.verified + (NEW.verified IS NOT NULL)::int - (OLD.verified IS NOT NULL)::int,
        mismatches = c.mismatches + (NEW.verify_matches IS NOT DISTINCT FROM false)::int
                     - (OLD.verify_matches IS NOT DISTINCT FROM false)::int
    WHERE c.hypertable_schema = NEW.hypertable_schema AND c.hypertable_name = NEW.hypertable_name
      AND c.shard = (NEW.task_id % 16)::int;
  END IF;
  RETURN NULL;
END
$f$;
