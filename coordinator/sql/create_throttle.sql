-- no parameters
-- Throttle settings of the migration, one row, read by the coordinator every progress
-- interval: `copy --max-rate` and `backfillctl throttle` write them, so they change while a
-- copy runs and survive a coordinator restart.
CREATE TABLE IF NOT EXISTS __backfill.throttle (
  id                        boolean PRIMARY KEY DEFAULT true CHECK (id),
  max_bytes_per_second      bigint NOT NULL DEFAULT 0,   -- all workers together; 0: no limit
  max_chunks_per_hypertable integer NOT NULL DEFAULT 0,  -- leased at once; 0: no cap
  updated_at                timestamptz NOT NULL DEFAULT now()
);
INSERT INTO __backfill.throttle DEFAULT VALUES ON CONFLICT DO NOTHING;
