-- no parameters; a new copy gives failed tasks their attempts back
UPDATE __backfill.task SET attempts = 0, gave_up = false WHERE worked IS NULL AND attempts > 0
