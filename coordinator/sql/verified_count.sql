-- no parameters; how many copied tasks have a verification result.
SELECT count(*) FROM __backfill.task WHERE worked IS NOT NULL AND verified IS NOT NULL
