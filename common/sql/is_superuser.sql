-- no parameters; whether the session's user is a superuser (who may write TimescaleDB's
-- catalog, e.g. chunk status bits).
SELECT coalesce((SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user), false)
