-- pg-dbmail 000007: the helpers for message content, used by sp_send_dbmail and queue_mail (000004):
-- running a query in the caller's session and formatting its result (TEXT like sqlcmd, CSV, HTML,
-- JSON), reading file attachments (only from AttachmentDirectories), content types, and the checks of
-- every attachment (MaxFileSize, ProhibitedExtensions) and of the whole mail (MaxMailSize).

-- The guard: waits for any other migrator; refuses this file if applied already or out of order.
SELECT dbmail.begin_migration(7, 'content', 'views_and_privileges');

-- A MIME type from a file name's last extension.
CREATE FUNCTION dbmail.content_type_for(filename text) RETURNS text
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
AS $$
BEGIN
  RETURN CASE lower(substring(filename FROM '\.([^.]+)$'))
    WHEN 'txt' THEN 'text/plain' WHEN 'log' THEN 'text/plain' WHEN 'csv' THEN 'text/csv'
    WHEN 'tsv' THEN 'text/tab-separated-values' WHEN 'htm' THEN 'text/html' WHEN 'html' THEN 'text/html'
    WHEN 'json' THEN 'application/json' WHEN 'xml' THEN 'application/xml' WHEN 'pdf' THEN 'application/pdf'
    WHEN 'zip' THEN 'application/zip' WHEN 'gz' THEN 'application/gzip' WHEN 'sql' THEN 'application/sql'
    WHEN 'png' THEN 'image/png' WHEN 'jpg' THEN 'image/jpeg' WHEN 'jpeg' THEN 'image/jpeg'
    WHEN 'gif' THEN 'image/gif' WHEN 'svg' THEN 'image/svg+xml' WHEN 'ics' THEN 'text/calendar'
    WHEN 'xlsx' THEN 'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet'
    WHEN 'docx' THEN 'application/vnd.openxmlformats-officedocument.wordprocessingml.document'
    WHEN 'xls' THEN 'application/vnd.ms-excel'
    ELSE 'application/octet-stream'
  END;
END;
$$;

-- One attachment's name and size: a file name (not a path) without line breaks, an extension not in
-- ProhibitedExtensions (the last one, case-insensitive), at most MaxFileSize bytes.
CREATE FUNCTION dbmail.check_attachment(parameter text, filename text, size bigint) RETURNS void
LANGUAGE plpgsql STABLE
AS $$
DECLARE
  -- Judged as it will be stored (trimmed): a trailing space must not hide a prohibited extension.
  extension text := lower(substring(btrim(filename, E' \t') FROM '\.([^.]*)$'));
  max_size bigint := dbmail.setting('MaxFileSize')::bigint;
BEGIN
  IF filename IS NULL OR btrim(filename) = '' THEN
    PERFORM dbmail.raise_error('22004', parameter, filename, 'an attachment needs a file name');
  END IF;
  PERFORM dbmail.check_header_text(parameter, filename);
  IF filename ~ '[/\\]' OR length(filename) > 255 THEN
    PERFORM dbmail.raise_error('22023', parameter, filename, 'must be a file name of at most 255 characters, not a path');
  END IF;
  IF extension = ANY (string_to_array(dbmail.setting('ProhibitedExtensions'), ',')) THEN
    PERFORM dbmail.raise_error('22023', parameter, filename,
      format('Database Mail is not permitted to send files with the extension %s (ProhibitedExtensions)', extension));
  END IF;
  IF size > max_size THEN
    PERFORM dbmail.raise_error('54000', parameter, filename,
      format('%s bytes is more than MaxFileSize (%s bytes)', size, max_size));
  END IF;
END;
$$;

-- Reads the files of a `;` list, as the database server. The only path from dbmail to the file system:
-- SECURITY DEFINER, so it reads with the rights of the role that installed pg-dbmail, which needs
-- pg_read_server_files. Only absolute paths below a directory of AttachmentDirectories are read; `.` and
-- `..` components are refused so a path cannot climb out. (SQL cannot resolve symbolic links: keep the
-- attachment directories writable only by people trusted to place files there.)
CREATE FUNCTION dbmail.read_attachment_files(file_attachments text) RETURNS dbmail.attachment[]
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  directories text[] := array_remove(string_to_array(dbmail.setting('AttachmentDirectories'), ';'), '');
  entry text;
  path text;
  name text;
  info record;
  content bytea;
  files dbmail.attachment[] := '{}';
BEGIN
  FOREACH entry IN ARRAY string_to_array(file_attachments, ';') LOOP
    path := btrim(entry, E' \t');
    CONTINUE WHEN path = '';
    PERFORM dbmail.check_header_text('file_attachments', path);
    IF path !~ '^/' THEN
      PERFORM dbmail.raise_error('22023', 'file_attachments', path, 'must be an absolute path on the database server');
    END IF;
    path := regexp_replace(path, '/+', '/', 'g');
    IF path ~ '(^|/)\.\.?(/|$)' THEN
      PERFORM dbmail.raise_error('22023', 'file_attachments', path, 'may not contain . or .. components');
    END IF;
    IF cardinality(directories) = 0 THEN
      PERFORM dbmail.raise_error('42501', 'file_attachments', path,
        'file attachments are disabled: an admin must name the directories they may come from '
        '(sysmail_configure_sp(''AttachmentDirectories'', ''/srv/reports''))');
    END IF;
    IF NOT EXISTS (SELECT FROM unnest(directories) d WHERE d = '/' OR starts_with(path, d || '/')) THEN
      PERFORM dbmail.raise_error('42501', 'file_attachments', path,
        format('is outside the directories attachments may come from (AttachmentDirectories: %s)',
               array_to_string(directories, ';')));
    END IF;
    IF NOT pg_has_role(current_user, 'pg_read_server_files', 'USAGE') THEN
      PERFORM dbmail.raise_error('42501', 'file_attachments', path,
        format('the database may not read files: GRANT pg_read_server_files TO %s (the owner of schema dbmail); '
               'in-memory attachments (attachments => ...) need no such right', current_user));
    END IF;
    SELECT * INTO info FROM pg_stat_file(path, true);
    IF info.size IS NULL THEN
      PERFORM dbmail.raise_error('58P01', 'file_attachments', path, 'no such file on the database server');
    ELSIF info.isdir THEN
      PERFORM dbmail.raise_error('22023', 'file_attachments', path, 'is a directory, not a file');
    END IF;
    name := substring(path FROM '[^/]+$');
    PERFORM dbmail.check_attachment('file_attachments', name, info.size);
    BEGIN
      content := pg_read_binary_file(path);
    EXCEPTION WHEN OTHERS THEN
      PERFORM dbmail.raise_error('58030', 'file_attachments', path,
        format('the database server cannot read it: %s', SQLERRM));
    END;
    files := files || ROW(name, content, dbmail.content_type_for(name))::dbmail.attachment;
  END LOOP;
  RETURN files;
END;
$$;

CREATE FUNCTION dbmail.html_escape(value text) RETURNS text
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  RETURN replace(replace(replace(replace(replace(value, '&', '&amp;'), '<', '&lt;'), '>', '&gt;'), '"', '&quot;'),
                 '''', '&#39;');
END;
$$;

-- TEXT, the way sqlcmd (and so SQL Server's @query) prints a result: a header line and a dash line,
-- columns padded to their width (numbers right-aligned), NULL shown as NULL, values cut at 256
-- characters unless no_truncate, lines wrapped at `width`, and "(N rows affected)".
CREATE FUNCTION dbmail.format_text(names text[], numeric_columns boolean[], cells text[], row_count integer,
  header boolean, width integer, separator text, no_padding boolean, no_truncate boolean) RETURNS text
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  columns integer := cardinality(names);
  widths integer[] := '{}';
  shown text[] := '{}';
  lines text[] := '{}';
  line text;
  cell text;
  i integer;
  r integer;
BEGIN
  -- cells is row-major: cell (r, i) is cells[(r - 1) * columns + i].
  FOR r IN 1 .. row_count LOOP
    FOR i IN 1 .. columns LOOP
      cell := COALESCE(cells[(r - 1) * columns + i], 'NULL');
      IF NOT no_truncate THEN
        cell := left(cell, 256);
      END IF;
      shown := shown || cell;
    END LOOP;
  END LOOP;
  FOR i IN 1 .. columns LOOP
    widths := widths || GREATEST(CASE WHEN header THEN length(names[i]) ELSE 0 END,
      (SELECT max(length(shown[(r2 - 1) * columns + i])) FROM generate_series(1, row_count) r2), 1);
  END LOOP;
  IF header THEN
    lines := lines || dbmail.text_line(names, widths, array_fill(false, ARRAY[columns]), separator, no_padding);
    lines := lines || array_to_string(ARRAY(SELECT repeat('-', CASE WHEN no_padding THEN length(names[k]) ELSE widths[k] END)
                                            FROM generate_series(1, columns) k), separator);
  END IF;
  FOR r IN 1 .. row_count LOOP
    lines := lines || dbmail.text_line(shown[(r - 1) * columns + 1 : r * columns], widths, numeric_columns,
                                       separator, no_padding);
  END LOOP;
  -- Wrap lines longer than the width, as sqlcmd does (no_padding overrides the width).
  lines := CASE WHEN no_padding THEN lines ELSE ARRAY(
    SELECT substr(l.line, (k - 1) * width + 1, width)
    FROM unnest(lines) WITH ORDINALITY AS l(line, n),
         generate_series(1, GREATEST(1, ceil(length(l.line)::numeric / width)::integer)) k
    ORDER BY l.n, k) END;
  RETURN array_to_string(lines || ''::text || format('(%s %s affected)', row_count,
    CASE WHEN row_count = 1 THEN 'row' ELSE 'rows' END), E'\n');
END;
$$;

CREATE FUNCTION dbmail.text_line(values_ text[], widths integer[], right_aligned boolean[], separator text,
  no_padding boolean) RETURNS text
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF no_padding THEN
    RETURN array_to_string(ARRAY(SELECT COALESCE(v, '') FROM unnest(values_) v), separator);
  END IF;
  RETURN rtrim(array_to_string(ARRAY(
    SELECT CASE WHEN right_aligned[k] THEN lpad(values_[k], widths[k]) ELSE rpad(values_[k], widths[k]) END
    FROM generate_series(1, cardinality(values_)) k), separator), ' ');
END;
$$;

-- CSV as RFC 4180: a header row, fields quoted when they hold a comma, a quote or a line break (quotes
-- doubled), NULL as an empty field, CRLF line ends.
CREATE FUNCTION dbmail.format_csv(names text[], cells text[], row_count integer, header boolean) RETURNS text
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  columns integer := cardinality(names);
  lines text[] := '{}';
  r integer;
BEGIN
  IF header THEN
    lines := lines || dbmail.csv_line(names);
  END IF;
  FOR r IN 1 .. row_count LOOP
    lines := lines || dbmail.csv_line(cells[(r - 1) * columns + 1 : r * columns]);
  END LOOP;
  RETURN CASE WHEN cardinality(lines) = 0 THEN '' ELSE array_to_string(lines, E'\r\n') || E'\r\n' END;
END;
$$;

CREATE FUNCTION dbmail.csv_line(fields text[]) RETURNS text
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  RETURN array_to_string(ARRAY(
    SELECT CASE WHEN f IS NULL THEN ''
                WHEN f ~ '[",\r\n]' THEN '"' || replace(f, '"', '""') || '"'
                ELSE f END
    FROM unnest(fields) f), ',');
END;
$$;

-- HTML: a table with inline styles (mail clients ignore style sheets), values escaped, numbers
-- right-aligned, NULL in grey.
CREATE FUNCTION dbmail.format_html(names text[], numeric_columns boolean[], cells text[], row_count integer,
  header boolean) RETURNS text
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  columns integer := cardinality(names);
  cell_style text := 'border:1px solid #d0d7de;padding:4px 8px';
  html text := '<table style="border-collapse:collapse;font-family:Arial,Helvetica,sans-serif;font-size:13px">';
  r integer;
BEGIN
  IF header THEN
    html := html || '<thead><tr>' || array_to_string(ARRAY(
      SELECT format('<th style="%s;background:#f6f8fa;text-align:%s">%s</th>', cell_style,
                    CASE WHEN numeric_columns[k] THEN 'right' ELSE 'left' END, dbmail.html_escape(names[k]))
      FROM generate_series(1, columns) k), '') || '</tr></thead>';
  END IF;
  html := html || '<tbody>';
  FOR r IN 1 .. row_count LOOP
    html := html || '<tr>' || array_to_string(ARRAY(
      SELECT format('<td style="%s%s">%s</td>', cell_style,
                    CASE WHEN numeric_columns[k] THEN ';text-align:right' ELSE '' END,
                    COALESCE(dbmail.html_escape(cells[(r - 1) * columns + k]), '<span style="color:#8c959f">NULL</span>'))
      FROM generate_series(1, columns) k), '') || '</tr>';
  END LOOP;
  RETURN html || '</tbody></table>';
END;
$$;

-- Runs `query` and formats its result. SECURITY INVOKER and no pinned search_path: the query runs in
-- the caller's session, with the caller's rights and search_path, and sees its temporary tables. It is
-- wrapped as a subquery, so it must be one statement that returns rows, and materialised in a
-- temporary table, which is how its column names and types are learned. Every name below is qualified.
CREATE FUNCTION dbmail.run_query(query text, result_format text, header boolean, width integer, separator text,
  no_padding boolean, no_truncate boolean) RETURNS text
LANGUAGE plpgsql
AS $$
DECLARE
  result_table text := 'dbmail_query_' || pg_catalog.replace(pg_catalog.gen_random_uuid()::text, '-', '');
  -- The newline keeps a trailing -- comment from swallowing the closing parenthesis.
  subquery text := '(' || pg_catalog.regexp_replace(query, '[;[:space:]]+$', '') || E'\n) dbmail_query';
  relation pg_catalog.regclass;
  names text[];
  numeric_columns boolean[];
  cells text[];
  rows_2d text[];
  row_count integer;
  formatted text;
BEGIN
  BEGIN
    EXECUTE pg_catalog.format('CREATE TEMPORARY TABLE %I AS SELECT * FROM %s', result_table, subquery);
  EXCEPTION
    WHEN duplicate_column THEN
      -- Columns with the same name (SELECT a.id, b.id; or unnamed ones): a table cannot hold them.
      RETURN dbmail.run_query_as_json(subquery, result_format, header, width, separator, no_padding, no_truncate);
    WHEN syntax_error THEN
      -- sp_send_dbmail prefixes the message with the query. A ; that broke the subquery: say why.
      IF pg_catalog.strpos(pg_catalog.regexp_replace(query, '[;[:space:]]+$', ''), ';') > 0 THEN
        RAISE EXCEPTION USING ERRCODE = '42601',
          MESSAGE = pg_catalog.format('must be one statement that returns rows (%s)', SQLERRM);
      END IF;
      RAISE;
  END;
  relation := pg_catalog.format('pg_temp.%I', result_table)::pg_catalog.regclass;
  SELECT pg_catalog.array_agg(a.attname::text ORDER BY a.attnum),
         pg_catalog.array_agg(a.atttypid IN (20, 21, 23, 26, 700, 701, 790, 1700) ORDER BY a.attnum)
    INTO names, numeric_columns
  FROM pg_catalog.pg_attribute a WHERE a.attrelid = relation AND a.attnum > 0 AND NOT a.attisdropped;
  IF names IS NULL THEN
    RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'returns no columns';
  END IF;
  IF pg_catalog.upper(result_format) = 'JSON' THEN
    EXECUTE pg_catalog.format('SELECT COALESCE(pg_catalog.json_agg(t), ''[]''::pg_catalog.json)::text FROM %s t', relation)
      INTO formatted;
  ELSE
    -- One row per row, each a text array; unnest flattens them row after row.
    EXECUTE pg_catalog.format('SELECT pg_catalog.array_agg(ARRAY[%s]::text[]) FROM %s t',
      (SELECT pg_catalog.string_agg(pg_catalog.format('t.%I::text', n), ', ') FROM pg_catalog.unnest(names) n),
      relation)
      INTO rows_2d;
    row_count := COALESCE(pg_catalog.array_length(rows_2d, 1), 0);
    cells := ARRAY(SELECT pg_catalog.unnest(rows_2d));
    formatted := dbmail.format_result(names, numeric_columns, cells, row_count, result_format, header, width,
                                      separator, no_padding, no_truncate);
  END IF;
  EXECUTE pg_catalog.format('DROP TABLE %s', relation);
  RETURN formatted;
END;
$$;

-- The path for results whose column names repeat: rows as JSON (which keeps repeated keys, in order).
-- Values are shown as JSON gives them (dates in ISO 8601), and a result without rows has no header.
CREATE FUNCTION dbmail.run_query_as_json(subquery text, result_format text, header boolean, width integer,
  separator text, no_padding boolean, no_truncate boolean) RETURNS text
LANGUAGE plpgsql
AS $$
DECLARE
  rows_json pg_catalog.json;
BEGIN
  EXECUTE pg_catalog.format('SELECT pg_catalog.json_agg(pg_catalog.row_to_json(dbmail_query)) FROM %s', subquery)
    INTO rows_json;
  IF pg_catalog.upper(result_format) = 'JSON' THEN
    RETURN COALESCE(rows_json::text, '[]');
  END IF;
  RETURN dbmail.format_result(
    ARRAY(SELECT e.key FROM pg_catalog.json_each(rows_json -> 0) e),
    ARRAY(SELECT pg_catalog.json_typeof(e.value) = 'number' FROM pg_catalog.json_each(rows_json -> 0) e),
    ARRAY(SELECT e.value FROM pg_catalog.json_array_elements(rows_json) WITH ORDINALITY AS r(item, n),
                 LATERAL pg_catalog.json_each_text(r.item) WITH ORDINALITY AS e(key, value, k) ORDER BY r.n, e.k),
    COALESCE(pg_catalog.json_array_length(rows_json), 0), result_format, header, width, separator, no_padding,
    no_truncate);
END;
$$;

CREATE FUNCTION dbmail.format_result(names text[], numeric_columns boolean[], cells text[], row_count integer,
  result_format text, header boolean, width integer, separator text, no_padding boolean, no_truncate boolean)
RETURNS text
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  RETURN CASE upper(result_format)
    WHEN 'CSV' THEN dbmail.format_csv(names, cells, row_count, header)
    WHEN 'HTML' THEN dbmail.format_html(names, numeric_columns, cells, row_count, header)
    ELSE dbmail.format_text(names, numeric_columns, cells, row_count, header, width, separator, no_padding, no_truncate)
  END;
END;
$$;

-- MaxMailSize: refuses when the mail has grown to more than max_size bytes (0 = unlimited), naming the
-- parameter whose content pushed it over.
CREATE FUNCTION dbmail.check_mail_size(parameter text, value text, size bigint, max_size bigint) RETURNS void
LANGUAGE plpgsql IMMUTABLE
AS $$
BEGIN
  IF max_size > 0 AND size > max_size THEN
    PERFORM dbmail.raise_error('54000', parameter, value,
      format('the mail would be %s bytes (subject, body and attachments), more than MaxMailSize (%s bytes)',
             size, max_size));
  END IF;
END;
$$;

-- Privileges of what this file added or changed.
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA dbmail FROM PUBLIC;
-- Called by sp_send_dbmail in the caller's context (pure functions, except run_query, which runs the
-- caller's own query with the caller's rights).
GRANT EXECUTE ON FUNCTION
  dbmail.run_query(text, text, boolean, integer, text, boolean, boolean),
  dbmail.run_query_as_json(text, text, boolean, integer, text, boolean, boolean),
  dbmail.format_result(text[], boolean[], text[], integer, text, boolean, integer, text, boolean, boolean),
  dbmail.format_text(text[], boolean[], text[], integer, boolean, integer, text, boolean, boolean),
  dbmail.text_line(text[], integer[], boolean[], text, boolean),
  dbmail.format_csv(text[], text[], integer, boolean),
  dbmail.csv_line(text[]),
  dbmail.format_html(text[], boolean[], text[], integer, boolean),
  dbmail.html_escape(text)
TO dbmail_user;

-- Records this file in dbmail.migrations; the checksum is the sha256 of the text above this line
-- (written by `npm run migrations:seal`).
SELECT dbmail.record_migration(7, 'content', 'e0b8090375f7e096dfee7f30ea4bf509d76bab8203f7e981a3746270bc19c664');
