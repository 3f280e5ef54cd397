-- pg-dbmail 000007: message content. Query results (run in the caller's session with the caller's
-- rights, formatted as TEXT like sqlcmd, or CSV, HTML, JSON), file attachments (read by the database
-- server, only from AttachmentDirectories), and in-memory attachments; every attachment checked against
-- MaxFileSize and ProhibitedExtensions; and the limits on each mail (MaxRecipientsPerMail, MaxMailSize) and
-- on each role (MaxMailsPerUserPerDay).

-- A MIME type from a file name's last extension.
CREATE FUNCTION dbmail.content_type_for(filename text) RETURNS text
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
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
SET search_path = pg_catalog, pg_temp
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

-- Now that query, file_attachments and attachments are supported, without their "not supported yet".
-- Granted to dbmail_user: sp_send_dbmail checks the arguments before it runs a query.
CREATE OR REPLACE FUNCTION dbmail.check_send_arguments(
  subject text, body text, body_format text, importance text, sensitivity text, query text,
  execute_query_database text, attach_query_result_as_file boolean, query_result_header boolean,
  query_result_width integer, query_result_separator text, exclude_query_output boolean,
  append_query_error boolean, query_no_truncate boolean, query_result_no_padding boolean,
  file_attachments text, attachments dbmail.attachment[], headers jsonb, idempotency_key text,
  query_result_format text
) RETURNS void
LANGUAGE plpgsql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF importance IS NULL THEN
    PERFORM dbmail.raise_error('22004', 'importance', NULL, 'must be LOW, NORMAL or HIGH');
  ELSIF sensitivity IS NULL THEN
    PERFORM dbmail.raise_error('22004', 'sensitivity', NULL, 'must be NORMAL, PERSONAL, PRIVATE or CONFIDENTIAL');
  ELSIF query_result_format IS NULL THEN
    PERFORM dbmail.raise_error('22004', 'query_result_format', NULL, 'must be TEXT, CSV, HTML or JSON');
  ELSIF query_result_width IS NULL THEN
    PERFORM dbmail.raise_error('22004', 'query_result_width', NULL, 'must be from 10 to 32767');
  ELSIF query_result_separator IS NULL THEN
    PERFORM dbmail.raise_error('22004', 'query_result_separator', NULL, 'must be exactly one character');
  END IF;
  IF upper(btrim(body_format)) NOT IN ('TEXT', 'HTML') THEN
    PERFORM dbmail.raise_error('22023', 'body_format', body_format, 'must be TEXT or HTML');
  END IF;
  IF upper(btrim(importance)) NOT IN ('LOW', 'NORMAL', 'HIGH') THEN
    PERFORM dbmail.raise_error('22023', 'importance', importance, 'must be LOW, NORMAL or HIGH');
  END IF;
  IF upper(btrim(sensitivity)) NOT IN ('NORMAL', 'PERSONAL', 'PRIVATE', 'CONFIDENTIAL') THEN
    PERFORM dbmail.raise_error('22023', 'sensitivity', sensitivity,
      'must be NORMAL, PERSONAL, PRIVATE or CONFIDENTIAL');
  END IF;
  IF attach_query_result_as_file IS NULL THEN
    PERFORM dbmail.raise_error('22004', 'attach_query_result_as_file', NULL, 'must be true or false');
  ELSIF query_result_header IS NULL THEN
    PERFORM dbmail.raise_error('22004', 'query_result_header', NULL, 'must be true or false');
  ELSIF exclude_query_output IS NULL THEN
    PERFORM dbmail.raise_error('22004', 'exclude_query_output', NULL, 'must be true or false');
  ELSIF append_query_error IS NULL THEN
    PERFORM dbmail.raise_error('22004', 'append_query_error', NULL, 'must be true or false');
  ELSIF query_no_truncate IS NULL THEN
    PERFORM dbmail.raise_error('22004', 'query_no_truncate', NULL, 'must be true or false');
  ELSIF query_result_no_padding IS NULL THEN
    PERFORM dbmail.raise_error('22004', 'query_result_no_padding', NULL, 'must be true or false');
  END IF;
  IF query_result_width NOT BETWEEN 10 AND 32767 THEN
    PERFORM dbmail.raise_error('22023', 'query_result_width', query_result_width::text,
      'must be from 10 to 32767');
  END IF;
  IF length(query_result_separator) <> 1 THEN
    PERFORM dbmail.raise_error('22023', 'query_result_separator', query_result_separator,
      'must be exactly one character');
  END IF;
  IF query_result_no_padding AND query_no_truncate THEN
    PERFORM dbmail.raise_error('22023', 'query_result_no_padding', 'true',
      'query_result_no_padding and query_no_truncate cannot both be true');
  END IF;
  IF upper(btrim(query_result_format)) NOT IN ('TEXT', 'CSV', 'HTML', 'JSON') THEN
    PERFORM dbmail.raise_error('22023', 'query_result_format', query_result_format,
      'must be TEXT, CSV, HTML or JSON');
  END IF;
  IF attach_query_result_as_file AND query IS NULL THEN
    PERFORM dbmail.raise_error('22023', 'attach_query_result_as_file', 'true', 'needs a query');
  END IF;
  IF execute_query_database IS NOT NULL AND execute_query_database <> current_database() THEN
    PERFORM dbmail.raise_error('22023', 'execute_query_database', execute_query_database,
      format('queries run in the current database (%s); connect to the other database to query it',
             current_database()));
  END IF;
  PERFORM dbmail.check_header_text('subject', subject);
  IF length(subject) > 998 THEN
    PERFORM dbmail.raise_error('22023', 'subject', subject, 'is longer than 998 characters');
  END IF;
  IF NULLIF(body, '') IS NULL AND NULLIF(query, '') IS NULL AND NULLIF(file_attachments, '') IS NULL
     AND COALESCE(cardinality(attachments), 0) = 0 AND NULLIF(subject, '') IS NULL THEN
    PERFORM dbmail.raise_error('22004', 'body, query, file_attachments, attachments, subject', NULL,
      'a message needs at least one of these');
  END IF;
  PERFORM dbmail.check_headers(headers);
  IF idempotency_key IS NOT NULL AND (btrim(idempotency_key) = '' OR length(idempotency_key) > 255) THEN
    PERFORM dbmail.raise_error('22023', 'idempotency_key', idempotency_key,
      'must be 1 to 255 characters, not blank');
  END IF;
END;
$$;

-- queue_mail takes the formatted query result now.
DROP FUNCTION dbmail.queue_mail(text, text, text, text, text, text, text, text, text, text, text, text, boolean, text, boolean, integer, text, boolean, boolean, boolean, boolean, text, text, dbmail.attachment[], jsonb, timestamptz, text, text);

-- MaxMailSize: refuses when the mail has grown to more than max_size bytes (0 = unlimited), naming the
-- parameter whose content pushed it over.
CREATE FUNCTION dbmail.check_mail_size(parameter text, value text, size bigint, max_size bigint) RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF max_size > 0 AND size > max_size THEN
    PERFORM dbmail.raise_error('54000', parameter, value,
      format('the mail would be %s bytes (subject, body and attachments), more than MaxMailSize (%s bytes)',
             size, max_size));
  END IF;
END;
$$;

-- Validates and queues one message, with its attachments and its query result (formatted by
-- sp_send_dbmail in the caller's session), on behalf of the role that called sp_send_dbmail (its stamp).
-- SECURITY DEFINER because the tables are private; sp_send_dbmail, which runs as the caller, is the
-- public entry point.
CREATE FUNCTION dbmail.queue_mail(
  profile_name text, recipients text, copy_recipients text, blind_copy_recipients text, subject text,
  body text, body_format text, importance text, sensitivity text, file_attachments text, query text,
  execute_query_database text, attach_query_result_as_file boolean, query_attachment_filename text,
  query_result_header boolean, query_result_width integer, query_result_separator text,
  exclude_query_output boolean, append_query_error boolean, query_no_truncate boolean,
  query_result_no_padding boolean, from_address text, reply_to text, attachments dbmail.attachment[],
  headers jsonb, send_at timestamptz, idempotency_key text, query_result_format text, query_result text
) RETURNS bigint
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
  sender name := dbmail.take_caller_stamp('sp_send_dbmail');
  envelope jsonb;
  parsed_from jsonb;
  the_profile integer;
  new_id bigint;
  next_id bigint;
  files dbmail.attachment[] := '{}';
  result_bytes bytea;
  attached dbmail.attachment;
  format_name text := upper(btrim(query_result_format));
  -- The denial-of-service limits (0 = unlimited). A replay of an idempotency_key queues nothing, so it
  -- is not limited: it returns the item already queued.
  replay boolean;
  max_recipients bigint;
  max_size bigint;
  max_per_day bigint;
  recipient_count bigint := 0;
  mail_size bigint := 0;
  recent bigint;
BEGIN
  replay := idempotency_key IS NOT NULL AND EXISTS (
    SELECT FROM dbmail.mailitems m
    WHERE m.send_request_user = sender AND m.idempotency_key = queue_mail.idempotency_key);
  max_recipients := CASE WHEN replay THEN 0 ELSE dbmail.setting('MaxRecipientsPerMail')::bigint END;
  max_size := CASE WHEN replay THEN 0 ELSE dbmail.setting('MaxMailSize')::bigint END;
  max_per_day := CASE WHEN replay OR dbmail.is_admin(sender) THEN 0
                      ELSE dbmail.setting('MaxMailsPerUserPerDay')::bigint END;
  PERFORM dbmail.check_send_arguments(subject, body, COALESCE(body_format, 'TEXT'), importance, sensitivity,
    query, execute_query_database, attach_query_result_as_file, query_result_header, query_result_width,
    query_result_separator, exclude_query_output, append_query_error, query_no_truncate,
    query_result_no_padding, file_attachments, attachments, headers, idempotency_key, query_result_format);
  envelope := jsonb_build_object(
    'to', dbmail.parse_address_list('recipients', recipients),
    'cc', dbmail.parse_address_list('copy_recipients', copy_recipients),
    'bcc', dbmail.parse_address_list('blind_copy_recipients', blind_copy_recipients));
  IF envelope -> 'to' = '[]' AND envelope -> 'cc' = '[]' AND envelope -> 'bcc' = '[]' THEN
    PERFORM dbmail.raise_error('22004', 'recipients, copy_recipients, blind_copy_recipients', NULL,
      'a message needs at least one recipient');
  END IF;
  -- MaxRecipientsPerMail: every parsed address of the three lists counts; the list that goes over is named.
  IF max_recipients > 0 THEN
    recipient_count := jsonb_array_length(envelope -> 'to');
    IF recipient_count > max_recipients THEN
      PERFORM dbmail.raise_error('54000', 'recipients', recipients, format(
        '%s recipients (to, cc and bcc together) is more than MaxRecipientsPerMail (%s)', recipient_count, max_recipients));
    END IF;
    recipient_count := recipient_count + jsonb_array_length(envelope -> 'cc');
    IF recipient_count > max_recipients THEN
      PERFORM dbmail.raise_error('54000', 'copy_recipients', copy_recipients, format(
        '%s recipients (to, cc and bcc together) is more than MaxRecipientsPerMail (%s)', recipient_count, max_recipients));
    END IF;
    recipient_count := recipient_count + jsonb_array_length(envelope -> 'bcc');
    IF recipient_count > max_recipients THEN
      PERFORM dbmail.raise_error('54000', 'blind_copy_recipients', blind_copy_recipients, format(
        '%s recipients (to, cc and bcc together) is more than MaxRecipientsPerMail (%s)', recipient_count, max_recipients));
    END IF;
  END IF;
  parsed_from := dbmail.parse_single_address('from_address', from_address);
  PERFORM dbmail.parse_single_address('reply_to', reply_to);
  the_profile := dbmail.resolve_profile(sender, profile_name);

  -- MaxMailsPerUserPerDay (SQL Server's planned error 14657): items this role queued in the last 24
  -- hours, counted on mailitems_user_date_idx. The per-role lock makes concurrent sends count each other.
  IF max_per_day > 0 THEN
    PERFORM pg_advisory_xact_lock(hashtext('dbmail.MaxMailsPerUserPerDay'), hashtext(sender));
    SELECT count(*) INTO recent FROM dbmail.mailitems m
    WHERE m.send_request_user = sender AND m.send_request_date > now() - interval '1 day';
    IF recent >= max_per_day THEN
      PERFORM dbmail.raise_error('54000', 'send_request_user', sender, format(
        'has queued %s mails in the last 24 hours, the MaxMailsPerUserPerDay limit (%s); try again later or ask an admin to raise it',
        recent, max_per_day));
    END IF;
  END IF;

  -- MaxMailSize, counted as the mail grows: subject, body, attachments, then the query result.
  mail_size := COALESCE(octet_length(subject), 0);
  PERFORM dbmail.check_mail_size('subject', subject, mail_size, max_size);
  mail_size := mail_size + COALESCE(octet_length(body), 0);
  PERFORM dbmail.check_mail_size('body', body, mail_size, max_size);

  FOREACH attached IN ARRAY COALESCE(attachments, '{}') LOOP
    IF attached IS NULL OR attached.content IS NULL THEN
      PERFORM dbmail.raise_error('22004', 'attachments', attached.filename, 'an attachment needs content (bytea)');
    END IF;
    PERFORM dbmail.check_attachment('attachments', attached.filename, octet_length(attached.content));
    attached.filename := btrim(attached.filename, E' \t');
    attached.content_type := NULLIF(btrim(attached.content_type), '');
    IF attached.content_type !~ '^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*( *;[^\r\n]*)?$'
       OR attached.content_type ~ '[\x01-\x1f\x7f]' THEN
      PERFORM dbmail.raise_error('22023', 'attachments', attached.content_type,
        format('not a MIME type (type/subtype) for %s', attached.filename));
    END IF;
    attached.content_type := COALESCE(attached.content_type, dbmail.content_type_for(attached.filename));
    mail_size := mail_size + octet_length(attached.content);
    PERFORM dbmail.check_mail_size('attachments', attached.filename, mail_size, max_size);
    files := files || attached;
  END LOOP;
  IF NULLIF(btrim(file_attachments), '') IS NOT NULL THEN
    files := files || dbmail.read_attachment_files(file_attachments);
    mail_size := COALESCE(octet_length(subject), 0) + COALESCE(octet_length(body), 0)
      + (SELECT COALESCE(sum(octet_length(f.content)), 0) FROM unnest(files) f);
    PERFORM dbmail.check_mail_size('file_attachments', file_attachments, mail_size, max_size);
  END IF;
  IF query IS NOT NULL AND query_result IS NOT NULL THEN
    result_bytes := convert_to(query_result, 'UTF8');
    IF octet_length(result_bytes) > dbmail.setting('MaxFileSize')::bigint THEN
      PERFORM dbmail.raise_error('54000', 'query', query, format('the result (%s bytes) is more than MaxFileSize (%s bytes)',
        octet_length(result_bytes), dbmail.setting('MaxFileSize')));
    END IF;
    IF attach_query_result_as_file THEN
      attached := ROW(COALESCE(NULLIF(btrim(query_attachment_filename), ''),
                               'QueryResults.' || CASE format_name WHEN 'CSV' THEN 'csv' WHEN 'HTML' THEN 'html'
                                                                   WHEN 'JSON' THEN 'json' ELSE 'txt' END),
                      result_bytes, NULL)::dbmail.attachment;
      PERFORM dbmail.check_attachment('query_attachment_filename', attached.filename, octet_length(result_bytes));
      attached.content_type := CASE format_name WHEN 'CSV' THEN 'text/csv; charset=utf-8'
        WHEN 'HTML' THEN 'text/html; charset=utf-8' WHEN 'JSON' THEN 'application/json'
        ELSE 'text/plain; charset=utf-8' END;
      files := files || attached;
    ELSIF format_name = 'HTML' THEN
      -- An HTML table inline makes the whole body HTML.
      body := CASE WHEN upper(btrim(COALESCE(body_format, 'TEXT'))) = 'HTML' THEN COALESCE(body, '')
                   ELSE replace(dbmail.html_escape(COALESCE(body, '')), E'\n', '<br>') END
              || CASE WHEN COALESCE(body, '') = '' THEN '' ELSE '<br>' END || query_result;
      body_format := 'HTML';
    ELSE
      body := CASE WHEN COALESCE(body, '') = '' THEN '' ELSE body || E'\n' END || query_result;
    END IF;
    -- The whole mail again: an inline result grows the body (HTML escaping can grow it further).
    mail_size := COALESCE(octet_length(subject), 0) + COALESCE(octet_length(body), 0)
      + (SELECT COALESCE(sum(octet_length(f.content)), 0) FROM unnest(files) f);
    PERFORM dbmail.check_mail_size('query', query, mail_size, max_size);
  END IF;

  next_id := nextval('dbmail.mailitems_mailitem_id_seq');
  INSERT INTO dbmail.mailitems AS m (
    mailitem_id, profile_id, recipients, copy_recipients, blind_copy_recipients, envelope, subject, body,
    body_format, importance, sensitivity, file_attachments, query, execute_query_database,
    attach_query_result_as_file, query_result_header, query_result_width, query_result_separator,
    exclude_query_output, append_query_error, query_no_truncate, query_result_no_padding,
    query_attachment_filename, query_result_format, from_address, reply_to, headers, send_at,
    idempotency_key, message_id, next_attempt_at, send_request_user, last_mod_user)
  OVERRIDING SYSTEM VALUE
  VALUES (
    next_id, the_profile, NULLIF(btrim(recipients), ''), NULLIF(btrim(copy_recipients), ''),
    NULLIF(btrim(blind_copy_recipients), ''), envelope,
    COALESCE(NULLIF(subject, ''), 'PostgreSQL Message'), body,
    upper(btrim(COALESCE(body_format, 'TEXT'))), upper(btrim(importance)), upper(btrim(sensitivity)),
    file_attachments, query, execute_query_database, attach_query_result_as_file, query_result_header,
    query_result_width, query_result_separator, exclude_query_output, append_query_error,
    query_no_truncate, query_result_no_padding, query_attachment_filename,
    upper(btrim(query_result_format)), NULLIF(btrim(from_address), ''), NULLIF(btrim(reply_to), ''),
    headers, send_at, idempotency_key, dbmail.message_id_for(next_id, the_profile, parsed_from),
    GREATEST(COALESCE(send_at, now()), now()), sender, sender)
  ON CONFLICT (send_request_user, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
  RETURNING m.mailitem_id INTO new_id;

  IF new_id IS NULL THEN
    -- The same key from the same role: the message is already queued (or sent); nothing new is queued.
    SELECT m.mailitem_id INTO new_id FROM dbmail.mailitems m
    WHERE m.send_request_user = sender AND m.idempotency_key = queue_mail.idempotency_key;
    RETURN new_id;
  END IF;
  INSERT INTO dbmail.attachments (mailitem_id, filename, content_type, filesize, attachment, last_mod_user)
  SELECT new_id, f.filename, f.content_type, octet_length(f.content), f.content, sender
  FROM unnest(files) WITH ORDINALITY AS f(filename, content, content_type, n)
  ORDER BY f.n;
  IF send_at IS NULL OR send_at <= now() THEN
    PERFORM pg_notify('dbmail_queue', '');
  END IF;
  RETURN new_id;
END;
$$;

-- The public entry point, now running `query`. It runs with the caller's rights (SECURITY INVOKER):
-- the query reads only what the caller may, in the caller's session (temporary tables are visible);
-- then it stamps the caller's current_user for queue_mail, which does the rest. No search_path is
-- pinned, so a query sees the caller's; every name below is qualified.
CREATE OR REPLACE FUNCTION dbmail.sp_send_dbmail(
  profile_name text DEFAULT NULL,
  recipients text DEFAULT NULL,
  copy_recipients text DEFAULT NULL,
  blind_copy_recipients text DEFAULT NULL,
  subject text DEFAULT NULL,
  body text DEFAULT NULL,
  body_format text DEFAULT 'TEXT',
  importance text DEFAULT 'NORMAL',
  sensitivity text DEFAULT 'NORMAL',
  file_attachments text DEFAULT NULL,
  query text DEFAULT NULL,
  execute_query_database text DEFAULT NULL,
  attach_query_result_as_file boolean DEFAULT false,
  query_attachment_filename text DEFAULT NULL,
  query_result_header boolean DEFAULT true,
  query_result_width integer DEFAULT 256,
  query_result_separator text DEFAULT ' ',
  exclude_query_output boolean DEFAULT false,
  append_query_error boolean DEFAULT false,
  query_no_truncate boolean DEFAULT false,
  query_result_no_padding boolean DEFAULT false,
  from_address text DEFAULT NULL,
  reply_to text DEFAULT NULL,
  attachments dbmail.attachment[] DEFAULT NULL,
  headers jsonb DEFAULT NULL,
  send_at timestamptz DEFAULT NULL,
  idempotency_key text DEFAULT NULL,
  query_result_format text DEFAULT 'TEXT'
) RETURNS bigint
LANGUAGE plpgsql
AS $$
DECLARE
  query_result text;
  failure text;
  failure_state text;
  new_id bigint;
BEGIN
  IF query IS NOT NULL THEN
    -- Refuse bad arguments before running anything.
    PERFORM dbmail.check_send_arguments(subject, body, COALESCE(body_format, 'TEXT'), importance,
      sensitivity, query, execute_query_database, attach_query_result_as_file, query_result_header,
      query_result_width, query_result_separator, exclude_query_output, append_query_error, query_no_truncate,
      query_result_no_padding, file_attachments, attachments, headers, idempotency_key, query_result_format);
    BEGIN
      query_result := dbmail.run_query(query, query_result_format, query_result_header, query_result_width,
        query_result_separator, query_result_no_padding, query_no_truncate);
    EXCEPTION WHEN OTHERS THEN
      GET STACKED DIAGNOSTICS failure = MESSAGE_TEXT, failure_state = RETURNED_SQLSTATE;
      IF NOT append_query_error THEN
        PERFORM dbmail.raise_error(failure_state, 'query', query, failure);
      END IF;
      -- append_query_error: send anyway, with the error in the body where an inline result would be.
      failure := 'Query failed: ' || failure;
      IF NOT attach_query_result_as_file THEN
        query_result := CASE WHEN pg_catalog.upper(query_result_format) = 'HTML' THEN dbmail.html_escape(failure)
                             ELSE failure END;
      ELSE
        body := CASE WHEN COALESCE(body, '') = '' THEN '' ELSE body || E'\n' END
                || CASE WHEN pg_catalog.upper(COALESCE(body_format, 'TEXT')) = 'HTML'
                        THEN dbmail.html_escape(failure) ELSE failure END;
      END IF;
    END;
  END IF;
  PERFORM dbmail.stamp_caller();
  new_id := dbmail.queue_mail(profile_name, recipients, copy_recipients, blind_copy_recipients, subject, body,
    body_format, importance, sensitivity, file_attachments, query, execute_query_database,
    attach_query_result_as_file, query_attachment_filename, query_result_header, query_result_width,
    query_result_separator, exclude_query_output, append_query_error, query_no_truncate,
    query_result_no_padding, from_address, reply_to, attachments, headers, send_at, idempotency_key,
    query_result_format, query_result);
  -- What SQL Server prints; exclude_query_output silences it.
  IF NOT COALESCE(exclude_query_output, false) THEN
    RAISE NOTICE 'Mail (Id: %) queued.', new_id;
  END IF;
  RETURN new_id;
END;
$$;

-- Privileges of what this file added or changed.
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA dbmail FROM PUBLIC;
-- Called by sp_send_dbmail in the caller's context (pure functions, except run_query, which runs the
-- caller's own query with the caller's rights).
GRANT EXECUTE ON FUNCTION
  dbmail.queue_mail(text, text, text, text, text, text, text, text, text, text, text, text, boolean, text, boolean, integer, text, boolean, boolean, boolean, boolean, text, text, dbmail.attachment[], jsonb, timestamptz, text, text, text),
  dbmail.check_send_arguments(text, text, text, text, text, text, text, boolean, boolean, integer, text, boolean,
    boolean, boolean, boolean, text, dbmail.attachment[], jsonb, text, text),
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
