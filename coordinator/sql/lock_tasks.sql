-- no parameters; no other transaction changes tasks until this one ends (statements that
-- correct the counts themselves).
LOCK TABLE __backfill.task IN SHARE ROW EXCLUSIVE MODE
