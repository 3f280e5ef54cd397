-- pg-dbmail 000001: schema dbmail, the three roles, and how the migration files record themselves.
--
-- Everything lives in schema dbmail. Tables are private: users, admins and the sender reach them only
-- through the functions and views of the later files, and the last file (000021_privileges) grants
-- every privilege there is; until it has run, nobody but the owner can use anything here.
-- Apply with `dbmail migrate`, or with `psql -v ON_ERROR_STOP=1 -1 -f FILE` on each file in order: each
-- file starts with a guard and ends by recording itself in dbmail.migrations, either way. Every function
-- is created once, in its final form, in a file at or after everything it calls.

-- The guard. Later files call dbmail.begin_migration (below); this one cannot, as nothing exists yet.
-- It waits for any other migrator (`dbmail migrate` holds this lock for its whole run; a session that
-- holds it gets it again at once), then refuses to run twice.
DO $$
BEGIN
  PERFORM pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtextextended('pg-dbmail migrations', 0));
  IF pg_catalog.to_regclass('dbmail.migrations') IS NOT NULL THEN
    RAISE EXCEPTION USING ERRCODE = '55000', MESSAGE = '000001_schema is already applied to this database';
  ELSIF pg_catalog.to_regnamespace('dbmail') IS NOT NULL THEN
    RAISE EXCEPTION USING ERRCODE = '55000',
      MESSAGE = '000001_schema: schema dbmail exists already, but was not installed by these migrations';
  END IF;
END
$$;

CREATE SCHEMA dbmail;
COMMENT ON SCHEMA dbmail IS 'pg-dbmail: Database Mail for PostgreSQL';

-- Roles are cluster-wide: a second database's install finds them present, and two installs running at
-- once may race to create one (then the loser sees a unique violation on pg_authid).
DO $$
DECLARE
  role_name text;
BEGIN
  FOREACH role_name IN ARRAY ARRAY['dbmail_user', 'dbmail_admin', 'dbmail_sender'] LOOP
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = role_name) THEN
      BEGIN
        EXECUTE pg_catalog.format('CREATE ROLE %I NOLOGIN', role_name);
      EXCEPTION WHEN duplicate_object OR unique_violation THEN
        NULL;
      END;
    END IF;
  END LOOP;
END
$$;
COMMENT ON ROLE dbmail_user IS 'pg-dbmail: may send mail and see its own items and events';
COMMENT ON ROLE dbmail_admin IS 'pg-dbmail: configures Database Mail and sees every item and event';
COMMENT ON ROLE dbmail_sender IS 'pg-dbmail: what the sender process logs in as: claims and delivers mail';

-- Applied migrations: each file records itself with its last statement (dbmail.record_migration), in
-- its own transaction, whether `dbmail migrate` or `psql -1 -f` runs it.
CREATE TABLE dbmail.migrations (
  version integer PRIMARY KEY,
  name text NOT NULL,
  checksum text NOT NULL,
  applied_at timestamptz NOT NULL DEFAULT now(),
  applied_by name NOT NULL DEFAULT current_user
);

-- The first statement of every later file: waits for any other migrator (the advisory lock `dbmail
-- migrate` holds for its whole run; a session that holds it gets it again at once), then refuses a file
-- that is already applied, or whose predecessor is not, before the file changes anything. Called by
-- whoever applies the migrations (the owner of schema dbmail, or a superuser), from any search_path.
CREATE FUNCTION dbmail.begin_migration(version integer, name text, previous_name text) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  file text := pg_catalog.lpad(begin_migration.version::text, 6, '0') || '_' || begin_migration.name;
  previous_file text := pg_catalog.lpad((begin_migration.version - 1)::text, 6, '0') || '_' || previous_name;
  current_version integer;
  recorded_previous text;
BEGIN
  PERFORM pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtextextended('pg-dbmail migrations', 0));
  IF EXISTS (SELECT FROM dbmail.migrations m WHERE m.version = begin_migration.version) THEN
    RAISE EXCEPTION USING ERRCODE = '55000', MESSAGE = file || ' is already applied to this database';
  END IF;
  SELECT COALESCE(max(m.version), 0) INTO current_version FROM dbmail.migrations m;
  IF current_version <> begin_migration.version - 1 THEN
    RAISE EXCEPTION USING ERRCODE = '55000',
      MESSAGE = format('%s needs %s first; this database is at version %s',
                       file, previous_file, current_version);
  END IF;
  SELECT pg_catalog.lpad(m.version::text, 6, '0') || '_' || m.name INTO recorded_previous
  FROM dbmail.migrations m WHERE m.version = begin_migration.version - 1;
  IF recorded_previous IS DISTINCT FROM previous_file THEN
    RAISE EXCEPTION USING ERRCODE = '55000',
      MESSAGE = format('%s follows %s, but this database''s version %s is %s', file, previous_file,
                       current_version, recorded_previous);
  END IF;
END;
$$;

-- The last statement of every file: records it. The checksum is the sha256 of the file's text above
-- that statement (`npm run migrations:seal` writes it), so `dbmail migrate` accepts a database installed
-- with psql, and refuses one whose files changed after they were applied.
CREATE FUNCTION dbmail.record_migration(version integer, name text, checksum text) RETURNS void
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
  INSERT INTO dbmail.migrations (version, name, checksum) VALUES ($1, $2, $3);
$$;

-- Records this file in dbmail.migrations; the checksum is the sha256 of the text above this line
-- (written by `npm run migrations:seal`).
SELECT dbmail.record_migration(1, 'schema', '3f4ac4917171610e545b93bc56c5d650d2f6a11bc9fca9b2e2fd57013694f3a6');
