-- pg-dbmail 000011: sp_send_dbmail's query: exactly one statement, run in the caller's session with the
-- caller's rights and search_path, and its result formatted as SQL Server's @query does (TEXT like
-- sqlcmd) or as CSV, HTML or JSON, in time linear in the result, stopping as soon as the result passes
-- MaxFileSize; then the result added to the message (add_query_result, a step of queue_mail). All but
-- add_query_result are called in the caller's context (by send_with_query), and none is SECURITY
-- DEFINER but query_result_limit.

-- The guard: waits for any other migrator; refuses this file if applied already or out of order.
SELECT dbmail.begin_migration(11, 'query_results', 'attachments');

-- MaxFileSize, which a query result may not pass, for the caller's session (which cannot read settings).
CREATE FUNCTION dbmail.query_result_limit() RETURNS bigint
LANGUAGE sql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT s.paramvalue::bigint FROM dbmail.settings s WHERE s.paramname = 'MaxFileSize';
$$;

-- Runs `query` in the caller's session (SECURITY INVOKER: the caller's rights; its temporary tables are
-- visible), under the caller's search_path (caller_search_path, which sp_send_dbmail read), and keeps
-- its result in a temporary table, which is how its column names and types are learned. Everything
-- else here runs on the pinned search_path: the statements are built before the caller's is set, and
-- it is set back as soon as the query has run. The query is wrapped as a subquery, so it must be one
-- statement that returns rows; a cursor is opened on it first, because PostgreSQL cannot open one on
-- several statements and opening one runs nothing: a query that closes the parenthesis around it to add
-- statements of its own is refused before anything runs. Columns with the same name (SELECT a.id, b.id)
-- cannot be a table's: then each row is kept as JSON (json_rows), which keeps repeated keys, in order.
CREATE FUNCTION dbmail.run_query(query text, caller_search_path text, OUT relation regclass, OUT json_rows boolean)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  result_table text := 'dbmail_query_' || replace(gen_random_uuid()::text, '-', '');
  trimmed text := regexp_replace(query, '[;[:space:]]+$', '');
  -- The newline keeps a trailing -- comment from swallowing the closing parenthesis.
  subquery text := '(' || trimmed || E'\n) dbmail_query';
  probe_sql text := 'SELECT * FROM ' || subquery;
  table_sql text := format('CREATE TEMPORARY TABLE %I AS SELECT * FROM %s', result_table, subquery);
  json_sql text := format('CREATE TEMPORARY TABLE %I AS SELECT pg_catalog.row_to_json(dbmail_query) AS j FROM %s',
                          result_table, subquery);
  several boolean := strpos(trimmed, ';') > 0;
  probe refcursor;
  columns integer;
BEGIN
  json_rows := false;
  PERFORM pg_catalog.set_config('search_path', caller_search_path, true);
  BEGIN
    OPEN probe FOR EXECUTE probe_sql;
    CLOSE probe;
    EXECUTE table_sql;
  EXCEPTION
    WHEN duplicate_column THEN
      EXECUTE json_sql;
      json_rows := true;
    WHEN invalid_cursor_definition THEN
      PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
      RAISE EXCEPTION USING ERRCODE = '42601',
        MESSAGE = 'must be one statement that returns rows (this one closes the parenthesis sp_send_dbmail puts around it, and adds statements)';
    WHEN syntax_error THEN
      PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
      -- sp_send_dbmail prefixes the message with the query. A ; that broke the subquery: say why.
      IF several THEN
        RAISE EXCEPTION USING ERRCODE = '42601', MESSAGE = format('must be one statement that returns rows (%s)', SQLERRM);
      END IF;
      RAISE;
  END;
  PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
  relation := format('pg_temp.%I', result_table)::regclass;
  IF NOT json_rows THEN
    SELECT count(*) INTO columns FROM pg_attribute a WHERE a.attrelid = relation AND a.attnum > 0 AND NOT a.attisdropped;
    IF columns = 0 THEN
      RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'returns no columns';
    END IF;
  END IF;
END;
$$;

-- Text made safe inside HTML (the HTML result, and a query's error in an HTML body).
CREATE FUNCTION dbmail.html_escape(value text) RETURNS text
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  RETURN replace(replace(replace(replace(replace(value, '&', '&amp;'), '<', '&lt;'), '>', '&gt;'), '"', '&quot;'),
                 '''', '&#39;');
END;
$$;

-- One line of a CSV result, as RFC 4180 has it: fields quoted when they hold a comma, a quote or a line
-- break (quotes doubled), NULL as an empty field.
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

-- One row of an HTML result: escaped values, numbers right-aligned, NULL in grey.
CREATE FUNCTION dbmail.html_row(cells text[], numeric_columns boolean[]) RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT '<tr>' || array_to_string(ARRAY(
    SELECT format('<td style="%s%s">%s</td>', 'border:1px solid #d0d7de;padding:4px 8px',
                  CASE WHEN numeric_columns[k] THEN ';text-align:right' ELSE '' END,
                  COALESCE(dbmail.html_escape(cells[k]), '<span style="color:#8c959f">NULL</span>'))
    FROM generate_series(1, cardinality(cells)) k), '') || '</tr>';
$$;

-- A TEXT result's line longer than `width` characters, in pieces of `width` (sqlcmd wraps so). In time
-- linear in the line: substr() of text in a multibyte encoding walks the string from its start, so
-- cutting a long line with it takes time quadratic in its length. One byte per character: the bytes are
-- cut. Otherwise: one row per character, grouped.
CREATE FUNCTION dbmail.wrap_line(line text, width integer) RETURNS text[]
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  bytes bytea;
  encoding name;
BEGIN
  IF octet_length(line) = length(line) THEN
    bytes := textsend(line);
    encoding := current_setting('server_encoding');
    RETURN ARRAY(SELECT convert_from(substring(bytes FROM (k - 1) * width + 1 FOR width), encoding)
                 FROM generate_series(1, (octet_length(bytes) + width - 1) / width) k);
  END IF;
  RETURN ARRAY(SELECT string_agg(u.c, '' ORDER BY u.i)
               FROM unnest(string_to_array(line, NULL)) WITH ORDINALITY AS u(c, i)
               GROUP BY (u.i - 1) / width ORDER BY (u.i - 1) / width);
END;
$$;

-- Formats the result that run_query kept, as SQL Server's @query does, or NULL as soon as it is sure
-- the result has more than max_bytes bytes. Every pass reads the rows in the order the query returned
-- them, and each does work proportional to the rows it reads; the work stops at the limit:
--   TEXT (like sqlcmd): a header line and a dash line, columns padded to their width (numbers
--     right-aligned), NULL shown as NULL, values cut at 256 characters unless no_truncate, lines
--     wrapped at `width`, and "(N rows affected)". The widths need every row first: one pass adds up
--     each row as it will at least be shown (its values and separators; padding only adds to that) and
--     stops at the first row that passes max_bytes; then the widths; then the lines, counted as they
--     are made.
--   CSV (RFC 4180: quoted when needed, NULL empty, CRLF) and HTML (a table, values escaped): counted
--     row by row as they are made.
--   JSON: one pass adds up the rows' JSON and stops at the first that passes max_bytes; then json_agg.
-- Values are read cut to max_bytes + 1 characters (a text value is then read only that far): a value
-- longer than that makes the result longer than max_bytes anyway.
CREATE FUNCTION dbmail.format_query_result(relation regclass, json_rows boolean, result_format text, header boolean,
  width integer, separator text, no_padding boolean, no_truncate boolean, max_bytes bigint) RETURNS text
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  format_name text := upper(result_format);
  first_row json;
  names text[];
  numeric_columns boolean[];
  columns integer;
  cut bigint := max_bytes + 1;
  shown text;        -- SQL: the row's values as TEXT shows them (text[], no NULLs), over alias t
  values_ text;      -- SQL: the row's values cut to `cut` characters (text[], NULL for NULL), over alias t
  measure text;
  over boolean;
  maxes integer[];
  widths integer[];
  line_sql text;
  r record;
  piece text;
  lines text[] := '{}';
  total bigint := 0;
  row_count bigint := 0;
  trailer text;
  prefix text;
  formatted text;
BEGIN
  IF json_rows THEN
    EXECUTE format('SELECT t.j FROM %s t LIMIT 1', relation) INTO first_row;
    names := ARRAY(SELECT e.key FROM json_each(first_row) e);
    numeric_columns := ARRAY(SELECT json_typeof(e.value) = 'number' FROM json_each(first_row) e);
    shown := format('ARRAY(SELECT COALESCE(pg_catalog.substr(e.value, 1, %s), ''NULL'') FROM '
                    'pg_catalog.json_each_text(t.j) WITH ORDINALITY AS e(key, value, k) ORDER BY e.k)',
                    CASE WHEN no_truncate THEN cut ELSE 256 END);
    values_ := format('ARRAY(SELECT pg_catalog.substr(e.value, 1, %s) FROM '
                      'pg_catalog.json_each_text(t.j) WITH ORDINALITY AS e(key, value, k) ORDER BY e.k)', cut);
  ELSE
    SELECT array_agg(a.attname::text ORDER BY a.attnum),
           array_agg(a.atttypid IN (20, 21, 23, 26, 700, 701, 790, 1700) ORDER BY a.attnum),
           'ARRAY[' || string_agg(format('COALESCE(pg_catalog.substr(t.%I::text, 1, %s), ''NULL'')', a.attname,
                                         CASE WHEN no_truncate THEN cut ELSE 256 END), ', ' ORDER BY a.attnum) || ']',
           'ARRAY[' || string_agg(format('pg_catalog.substr(t.%I::text, 1, %s)', a.attname, cut), ', '
                                  ORDER BY a.attnum) || ']::text[]'
      INTO names, numeric_columns, shown, values_
    FROM pg_attribute a WHERE a.attrelid = relation AND a.attnum > 0 AND NOT a.attisdropped;
  END IF;
  columns := cardinality(names);

  IF format_name = 'JSON' THEN
    -- json_agg puts ", " between rows (and a line break before each composite row but the first): at
    -- least 2 bytes each, and 2 for the brackets.
    EXECUTE format('SELECT EXISTS (SELECT FROM (SELECT sum(octet_length(%s) + 2) OVER (ROWS BETWEEN UNBOUNDED '
                   'PRECEDING AND CURRENT ROW) AS run FROM %s t) w WHERE w.run > $1)',
                   CASE WHEN json_rows THEN 't.j::text' ELSE 'pg_catalog.row_to_json(t)::text' END, relation)
      INTO over USING max_bytes;
    IF over THEN
      RETURN NULL;
    END IF;
    EXECUTE format('SELECT COALESCE(pg_catalog.json_agg(%s), ''[]''::pg_catalog.json)::text FROM %s t',
                   CASE WHEN json_rows THEN 't.j' ELSE 't' END, relation)
      INTO formatted;
    RETURN CASE WHEN octet_length(formatted) > max_bytes THEN NULL ELSE formatted END;
  END IF;

  IF format_name = 'CSV' THEN
    IF header THEN
      lines := lines || dbmail.csv_line(names);
      total := octet_length(lines[1]) + 2;
    END IF;
    FOR r IN EXECUTE format('SELECT dbmail.csv_line(%s) AS line FROM %s t', values_, relation) LOOP
      total := total + octet_length(r.line) + 2;
      IF total > max_bytes THEN
        RETURN NULL;
      END IF;
      lines := lines || r.line;
    END LOOP;
    IF total > max_bytes THEN
      RETURN NULL;
    END IF;
    RETURN CASE WHEN cardinality(lines) = 0 THEN '' ELSE array_to_string(lines, E'\r\n') || E'\r\n' END;
  END IF;

  IF format_name = 'HTML' THEN
    prefix := '<table style="border-collapse:collapse;font-family:Arial,Helvetica,sans-serif;font-size:13px">';
    IF header THEN
      prefix := prefix || '<thead><tr>' || array_to_string(ARRAY(
        SELECT format('<th style="%s;background:#f6f8fa;text-align:%s">%s</th>', 'border:1px solid #d0d7de;padding:4px 8px',
                      CASE WHEN numeric_columns[k] THEN 'right' ELSE 'left' END, dbmail.html_escape(names[k]))
        FROM generate_series(1, columns) k), '') || '</tr></thead>';
    END IF;
    prefix := prefix || '<tbody>';
    total := octet_length(prefix) + octet_length('</tbody></table>');
    IF total > max_bytes THEN
      RETURN NULL;
    END IF;
    FOR r IN EXECUTE format('SELECT dbmail.html_row(%s, $1) AS line FROM %s t', values_, relation)
      USING numeric_columns LOOP
      total := total + octet_length(r.line);
      IF total > max_bytes THEN
        RETURN NULL;
      END IF;
      lines := lines || r.line;
    END LOOP;
    RETURN prefix || array_to_string(lines, '') || '</tbody></table>';
  END IF;

  -- TEXT. A row is shown at least as long as its values and separators without padding (padding only
  -- adds spaces, and the line is trimmed of trailing spaces either way).
  measure := CASE WHEN no_padding THEN format('array_to_string(%s, %L)', shown, separator)
                  ELSE format('rtrim(array_to_string(%s, %L), '' '')', shown, separator) END;
  EXECUTE format('SELECT EXISTS (SELECT FROM (SELECT sum(octet_length(%s) + 1) OVER (ROWS BETWEEN UNBOUNDED '
                 'PRECEDING AND CURRENT ROW) AS run FROM %s t) w WHERE w.run > $1)', measure, relation)
    INTO over USING max_bytes;
  IF over THEN
    RETURN NULL;
  END IF;
  IF no_padding OR columns = 0 THEN
    -- (No columns: the JSON rows of a result without rows, whose names could not be learned.)
    line_sql := format('SELECT %s AS line FROM %s t', measure, relation);
  ELSE
    EXECUTE format('SELECT array_agg(w.width ORDER BY w.k) FROM (SELECT u.k, max(length(u.v)) AS width '
                   'FROM %s t, unnest(%s) WITH ORDINALITY AS u(v, k) GROUP BY u.k) w', relation, shown)
      INTO maxes;
    widths := ARRAY(SELECT GREATEST(CASE WHEN header THEN length(names[k]) ELSE 0 END, maxes[k], 1)
                    FROM generate_series(1, columns) k);
    -- The shown values once per row (OFFSET 0 keeps the planner from computing them once per column).
    line_sql := format('SELECT rtrim(array_to_string(ARRAY[%s], %L), '' '') AS line FROM (SELECT %s AS s FROM %s t OFFSET 0) q',
      (SELECT string_agg(format(CASE WHEN numeric_columns[k] THEN 'lpad(q.s[%s], %s)' ELSE 'rpad(q.s[%s], %s)' END,
                                k, widths[k]), ', ' ORDER BY k)
       FROM generate_series(1, columns) k),
      separator, shown, relation);
  END IF;
  IF header THEN
    lines := ARRAY[
      CASE WHEN no_padding THEN array_to_string(names, separator)
           ELSE rtrim(array_to_string(ARRAY(SELECT rpad(names[k], widths[k]) FROM generate_series(1, columns) k),
                                      separator), ' ') END,
      array_to_string(ARRAY(SELECT repeat('-', CASE WHEN no_padding THEN length(names[k]) ELSE widths[k] END)
                            FROM generate_series(1, columns) k), separator)];
    IF NOT no_padding THEN
      lines := ARRAY(SELECT p FROM unnest(lines) WITH ORDINALITY AS l(line, n),
                       unnest(CASE WHEN length(l.line) <= width THEN ARRAY[l.line] ELSE dbmail.wrap_line(l.line, width) END)
                       WITH ORDINALITY AS w(p, k)
                     ORDER BY l.n, w.k);
    END IF;
    total := (SELECT sum(octet_length(h) + 1) FROM unnest(lines) h);
  END IF;
  FOR r IN EXECUTE line_sql LOOP
    row_count := row_count + 1;
    IF no_padding OR length(r.line) <= width THEN
      total := total + octet_length(r.line) + 1;
      IF total > max_bytes THEN
        RETURN NULL;
      END IF;
      lines := lines || r.line;
    ELSE
      FOREACH piece IN ARRAY dbmail.wrap_line(r.line, width) LOOP
        total := total + octet_length(piece) + 1;
        lines := lines || piece;
      END LOOP;
      IF total > max_bytes THEN
        RETURN NULL;
      END IF;
    END IF;
  END LOOP;
  trailer := format('(%s %s affected)', row_count, CASE WHEN row_count = 1 THEN 'row' ELSE 'rows' END);
  IF total + 1 + octet_length(trailer) > max_bytes THEN
    RETURN NULL;
  END IF;
  RETURN array_to_string(lines || ''::text || trailer, E'\n');
END;
$$;

-- The query result that send_with_query made, added to the message: attached (query_attachment_filename,
-- or QueryResults.<format>), or appended to the body, where an HTML table makes the whole body HTML.
-- It may not pass MaxFileSize, and MaxMailSize (max_size, 0 = unlimited) counts the message again:
-- fixed_size (all but the body and the attachments), the body it grew, and every attachment.
CREATE FUNCTION dbmail.add_query_result(
  query text, query_result text, attach_query_result_as_file boolean, query_attachment_filename text,
  query_result_format text, fixed_size bigint, max_size bigint,
  INOUT body text, INOUT body_format text, INOUT files dbmail.attachment[]
)
LANGUAGE plpgsql
AS $$
DECLARE
  format_name text := upper(btrim(query_result_format));
  result_bytes bytea := convert_to(query_result, 'UTF8');
  attached dbmail.attachment;
  mail_size bigint;
BEGIN
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
    body := CASE WHEN upper(btrim(COALESCE(body_format, 'TEXT'))) = 'HTML' THEN COALESCE(body, '')
                 ELSE replace(dbmail.html_escape(COALESCE(body, '')), E'\n', '<br>') END
            || CASE WHEN COALESCE(body, '') = '' THEN '' ELSE '<br>' END || query_result;
    body_format := 'HTML';
  ELSE
    body := CASE WHEN COALESCE(body, '') = '' THEN '' ELSE body || E'\n' END || query_result;
  END IF;
  -- The whole mail again: an inline result grows the body (HTML escaping can grow it further).
  mail_size := fixed_size + COALESCE(octet_length(body), 0)
    + (SELECT COALESCE(sum(octet_length(f.filename) + octet_length(f.content_type) + octet_length(f.content)), 0)
       FROM unnest(files) f);
  PERFORM dbmail.check_mail_size('query', query, mail_size, max_size);
END;
$$;

-- Records this file in dbmail.migrations; the checksum is the sha256 of the text above this line
-- (written by `npm run migrations:seal`).
SELECT dbmail.record_migration(11, 'query_results', '42c798881aeaac956e11a686e5a60d1cc2fcd3864e465c92653a761ce4d218ad');
