-- no parameters; a new copy gives failed tasks their attempts back
UPDATE __backfill.task SET attempts = 0 WHERE worked IS NULL AND attempts > 0
