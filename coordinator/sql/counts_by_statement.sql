-- no parameters; in a transaction whose next statement changes the counted columns of many
-- tasks and corrects the counts itself (migration_2.sql): the row trigger leaves them alone.
SET LOCAL backfill.counts_by_statement = 'on'
