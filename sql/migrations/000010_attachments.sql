-- pg-dbmail 000010: attachments: the in-memory attachment type, content types, the checks of every
-- attachment's name and size (MaxFileSize, ProhibitedExtensions) and of the whole mail (MaxMailSize),
-- reading file attachments (only from AttachmentDirectories), and a message's attachments gathered.

-- The guard: waits for any other migrator; refuses this file if applied already or out of order.
SELECT dbmail.begin_migration(10, 'attachments', 'settings');

-- An in-memory attachment: SELECT dbmail.sp_send_dbmail(..., attachments => ARRAY[
--   dbmail.attachment('report.csv', convert_to(csv, 'UTF8'), 'text/csv')])
CREATE TYPE dbmail.attachment AS (filename text, content bytea, content_type text);

CREATE FUNCTION dbmail.attachment(filename text, content bytea, content_type text DEFAULT NULL)
RETURNS dbmail.attachment
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT ROW(filename, content, content_type)::dbmail.attachment;
$$;

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
-- ProhibitedExtensions (the last one, case-insensitive), at most MaxFileSize bytes. The
-- name is judged as a receiver reads it: Windows drops trailing dots and spaces and reads what follows
-- a colon as an alternate data stream (`x.exe::$DATA` is x.exe), and mail programs drop or change
-- invisible and space-like characters (`x.exe` followed by a no-break space, a zero-width space or NEL).
-- A name that a receiver would read differently is refused, so the extension checked is the one the
-- receiver sees.
CREATE FUNCTION dbmail.check_attachment(parameter text, filename text, size bigint) RETURNS void
LANGUAGE plpgsql STABLE
AS $$
DECLARE
  -- Judged as it will be stored (trimmed): a trailing space must not hide a prohibited extension.
  trimmed text := btrim(filename, E' \t');
  extension text := lower(substring(trimmed FROM '\.([^.]*)$'));
  max_size bigint := dbmail.setting('MaxFileSize')::bigint;
BEGIN
  IF filename IS NULL OR btrim(filename) = '' THEN
    PERFORM dbmail.raise_error('22004', parameter, filename, 'an attachment needs a file name');
  END IF;
  PERFORM dbmail.check_header_text(parameter, filename);
  IF filename ~ '[/\\]' OR length(filename) > 255 THEN
    PERFORM dbmail.raise_error('22023', parameter, filename, 'must be a file name of at most 255 characters, not a path');
  END IF;
  -- Tab, C1 controls (NEL among them), Unicode spaces other than the plain space, and the format and
  -- other default-ignorable characters (soft hyphen, zero-width and direction marks, joiners,
  -- variation selectors, fillers, BOM, tags).
  IF trimmed ~ '[\t\u0080-\u00a0\u00ad\u034f\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u115f\u1160\u1680\u17b4\u17b5\u180b-\u180f\u2000-\u200f\u2028-\u202f\u205f-\u206f\u3000\u3164\ufe00-\ufe0f\ufeff\uffa0\ufff0-\ufffb\U000110bd\U000110cd\U00013430-\U0001343f\U0001bca0-\U0001bca3\U0001d173-\U0001d17a\U000e0000-\U000e0fff]' THEN
    PERFORM dbmail.raise_error('22023', parameter, filename,
      'a file name may not contain invisible, space-like or control characters other than a plain space '
      '(a receiver drops or changes them, and with them what the extension looks like)');
  END IF;
  IF strpos(trimmed, ':') > 0 THEN
    PERFORM dbmail.raise_error('22023', parameter, filename,
      'a file name may not contain a colon (Windows reads what follows it as an alternate data stream: x.exe::$DATA is x.exe)');
  END IF;
  IF right(trimmed, 1) = '.' THEN
    PERFORM dbmail.raise_error('22023', parameter, filename,
      'a file name may not end with a dot (Windows drops trailing dots and spaces, and the extension before them counts)');
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
-- Only regular files with content are read, and never more than the size checked before
-- reading (+1, to notice a file that grew): pg_stat_file shows a FIFO, a device and a socket as a file
-- of size 0 (and so does an empty file, which cannot be told apart); opening a FIFO blocks the backend
-- in the kernel until a writer comes, beyond statement_timeout, pg_cancel_backend and
-- pg_terminate_backend; a device can be read without end. So nothing of size 0 is opened.
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
    ELSIF info.size = 0 THEN
      PERFORM dbmail.raise_error('22023', 'file_attachments', path,
        'is empty, or not a regular file (a FIFO, a device, a socket, or a file the kernel makes up, as in /proc, '
        'all show size 0): only regular files with content are attached');
    END IF;
    name := substring(path FROM '[^/]+$');
    PERFORM dbmail.check_attachment('file_attachments', name, info.size);
    BEGIN
      -- At most one byte more than the size checked (a bytea holds at most 1073741819 bytes read so).
      content := pg_read_binary_file(path, 0, LEAST(info.size + 1, 1073741819));
    EXCEPTION WHEN OTHERS THEN
      PERFORM dbmail.raise_error('58030', 'file_attachments', path,
        format('the database server cannot read it: %s', SQLERRM));
    END;
    IF octet_length(content) > info.size THEN
      PERFORM dbmail.raise_error('58030', 'file_attachments', path,
        format('grew while it was read (it had %s bytes when its size was checked); attach it when it is complete',
               info.size));
    END IF;
    files := files || ROW(name, content, dbmail.content_type_for(name))::dbmail.attachment;
  END LOOP;
  RETURN files;
END;
$$;

-- MaxMailSize: refuses when the mail has grown to more than max_size bytes (0 = unlimited), naming the
-- parameter whose content pushed it over. The subject, the addresses, the headers, the body and every
-- attachment (its name, content type and content) count.
CREATE FUNCTION dbmail.check_mail_size(parameter text, value text, size bigint, max_size bigint) RETURNS void
LANGUAGE plpgsql IMMUTABLE
AS $$
BEGIN
  IF max_size > 0 AND size > max_size THEN
    PERFORM dbmail.raise_error('54000', parameter, value,
      format('the mail would be %s bytes (subject, addresses, headers, body and attachments), more than MaxMailSize (%s bytes)',
             size, max_size));
  END IF;
END;
$$;

-- The attachments of a message: the in-memory ones (checked, names trimmed, content types checked or
-- guessed from the name), then the files of file_attachments, read as the database server. MaxMailSize
-- (max_size, 0 = unlimited) counts each attachment's name, content type and content on top of mail_size,
-- what the message had before, and names the attachment (or the file list) that pushes it over.
CREATE FUNCTION dbmail.collect_attachments(attachments dbmail.attachment[], file_attachments text,
  mail_size bigint, max_size bigint) RETURNS dbmail.attachment[]
LANGUAGE plpgsql
AS $$
DECLARE
  files dbmail.attachment[] := '{}';
  attached dbmail.attachment;
  size bigint := mail_size;
BEGIN
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
    size := size + octet_length(attached.filename) + octet_length(attached.content_type)
      + octet_length(attached.content);
    PERFORM dbmail.check_mail_size('attachments', attached.filename, size, max_size);
    files := files || attached;
  END LOOP;
  IF NULLIF(btrim(file_attachments), '') IS NOT NULL THEN
    files := files || dbmail.read_attachment_files(file_attachments);
    size := mail_size
      + (SELECT COALESCE(sum(octet_length(f.filename) + octet_length(f.content_type) + octet_length(f.content)), 0)
         FROM unnest(files) f);
    PERFORM dbmail.check_mail_size('file_attachments', file_attachments, size, max_size);
  END IF;
  RETURN files;
END;
$$;

-- Records this file in dbmail.migrations; the checksum is the sha256 of the text above this line
-- (written by `npm run migrations:seal`).
SELECT dbmail.record_migration(10, 'attachments', '78415f10e7e78bce273675230acf674f09fbab69dad3c4fe2594a7ce69e8f846');
