-- pg-dbmail 000005: e-mail addresses. Lists are parsed in one pass, counted against MaxRecipientsPerMail
-- as they are parsed (the refusal comes at the first address over the limit, not after the whole list),
-- and refused where a mail program would read them differently from how they are recorded.

-- The guard: waits for any other migrator; refuses this file if applied already or out of order.
SELECT dbmail.begin_migration(5, 'addresses', 'callers');

-- RFC 5322 addr-spec: a dot-atom or quoted-string local part, a dot-atom or [literal] domain. Non-ASCII
-- letters are allowed (RFC 6531). Returns the problem, or NULL when the address is valid. No < or >
-- (allowed in a quoted local part or a domain literal by RFC 5322): nodemailer rewrites them, so the
-- mail would go to another address than the one recorded.
CREATE FUNCTION dbmail.address_problem(address text) RETURNS text
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
AS $$
DECLARE
  at_pos integer;
  local_part text;
  domain_part text;
BEGIN
  IF address IS NULL OR address = '' THEN
    RETURN 'an address is missing';
  END IF;
  -- Invisible characters (C1 controls, soft hyphen, zero-width and direction marks, BOM) make
  -- addresses that look like others.
  IF address ~ '[\u0080-\u009f\u00ad\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff]' THEN
    RETURN 'contains invisible or control characters';
  END IF;
  -- The last @ separates local part and domain (a quoted local part may contain @).
  at_pos := length(address) - strpos(reverse(address), '@') + 1;
  IF strpos(address, '@') = 0 THEN
    RETURN 'not an e-mail address (no @)';
  END IF;
  local_part := left(address, at_pos - 1);
  domain_part := substr(address, at_pos + 1);
  IF local_part = '' THEN
    RETURN 'not an e-mail address (nothing before the @)';
  ELSIF domain_part = '' THEN
    RETURN 'not an e-mail address (nothing after the @)';
  ELSIF length(local_part) > 64 THEN
    RETURN 'the part before the @ is longer than 64 characters';
  ELSIF length(address) > 254 THEN
    RETURN 'the address is longer than 254 characters';
  ELSIF NOT (local_part ~ '^[A-Za-z0-9!#$%&''*+/=?^_`{|}~\u0080-\U0010FFFF-]+(\.[A-Za-z0-9!#$%&''*+/=?^_`{|}~\u0080-\U0010FFFF-]+)*$'
             OR local_part ~ '^"([\x20\x21\x23-\x5b\x5d-\x7e\u0080-\U0010FFFF]|\\[\x20-\x7e])*"$') THEN
    RETURN 'not a valid e-mail address (the part before the @)';
  ELSIF NOT (domain_part ~ '^[A-Za-z0-9\u0080-\U0010FFFF]([A-Za-z0-9\u0080-\U0010FFFF-]*[A-Za-z0-9\u0080-\U0010FFFF])?(\.[A-Za-z0-9\u0080-\U0010FFFF]([A-Za-z0-9\u0080-\U0010FFFF-]*[A-Za-z0-9\u0080-\U0010FFFF])?)*$'
             OR domain_part ~ '^\[[\x21-\x5a\x5e-\x7e]*\]$') THEN
    RETURN 'not a valid e-mail address (the domain)';
  ELSIF domain_part ~ '(^|\.)[^.\[]{64,}(\.|$)' THEN
    RETURN 'a part of the domain is longer than 63 characters';
  ELSIF address ~ '[<>]' THEN
    -- Valid in a quoted local part or a domain literal, but rewritten by mail programs.
    RETURN 'contains < or >, which mail programs rewrite (the mail would go to another address)';
  END IF;
  RETURN NULL;
END;
$$;

-- The entries of a `;` list in which double-quoted strings (with \-escapes) may hold ; and , — in one
-- pass over the list: one regular expression finds the closed quoted strings (what is left outside them
-- must have no comma and no quote), another cuts the list into quoted strings, runs of other characters
-- and semicolons. Raises on a comma outside quotes (SQL Server's rule) and on a quote left open.
CREATE FUNCTION dbmail.split_quoted_list(parameter text, list text) RETURNS text[]
LANGUAGE plpgsql IMMUTABLE
AS $$
DECLARE
  outside text := regexp_replace(list, '"(?:[^"\\]|\\.)*"', '', 'g');
  joined text;
BEGIN
  -- Before the quote left open, if any: what follows it is inside quotes.
  IF strpos(split_part(outside, '"', 1), ',') > 0 THEN
    PERFORM dbmail.raise_error('22023', parameter, list, 'use '';'' to separate addresses');
  ELSIF strpos(outside, '"') > 0 THEN
    PERFORM dbmail.raise_error('22023', parameter, list, 'a double quote is not closed');
  END IF;
  -- Control characters are refused before this, so \x01 marks the separators.
  SELECT string_agg(CASE WHEN t.token[1] = ';' THEN E'\x01' ELSE t.token[1] END, '' ORDER BY t.n) INTO joined
  FROM regexp_matches(list, '"(?:[^"\\]|\\.)*"|[^";]+|;', 'g') WITH ORDINALITY AS t(token, n);
  RETURN string_to_array(joined, E'\x01');
END;
$$;

-- Parses one `;`-separated list (`a@x.org; "Doe, Jane" <jane@x.org>`) into
-- [{"name": ..., "address": ...}], raising an error that names the parameter and the offending entry.
-- A comma outside double quotes is refused, as in SQL Server. Empty entries (`a@x.org;`) are skipped.
-- `counted` addresses came before this list (to, then cc, then bcc); with max_count > 0 the address that
-- makes more than max_count raises MaxRecipientsPerMail's error at once. header_field: the list goes
-- into a header as given (from_address, reply_to), where a display name followed by a colon is group
-- syntax (`Team: <a@x.org>`), which mail programs read as a group: refused there. A display name may
-- have at most 256 characters.
CREATE FUNCTION dbmail.parse_addresses(parameter text, list text, counted bigint, max_count bigint,
  header_field boolean) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE
AS $$
DECLARE
  entries text[];
  entry text;
  parsed jsonb[] := '{}';
  n bigint := counted;
  lt integer;
  inner_part text;
  display_name text;
  address text;
  problem text;
BEGIN
  IF list IS NULL OR btrim(list) = '' THEN
    RETURN '[]';
  END IF;
  IF list ~ '[\x01-\x08\x0a-\x1f\x7f]' THEN
    PERFORM dbmail.raise_error('22023', parameter, list, 'line breaks and control characters are not allowed here');
  END IF;
  IF strpos(list, '"') = 0 THEN
    -- The common case, without quoted display names.
    IF strpos(list, ',') > 0 THEN
      PERFORM dbmail.raise_error('22023', parameter, list, 'use '';'' to separate addresses');
    END IF;
    entries := string_to_array(list, ';');
  ELSE
    entries := dbmail.split_quoted_list(parameter, list);
  END IF;

  FOREACH entry IN ARRAY entries LOOP
    entry := btrim(entry, E' \t');
    CONTINUE WHEN entry = '';
    n := n + 1;
    IF max_count > 0 AND n > max_count THEN
      PERFORM dbmail.raise_error('54000', parameter, list,
        format('more than MaxRecipientsPerMail (%s) recipients, to, cc and bcc together', max_count));
    END IF;
    display_name := NULL;
    address := entry;
    IF right(entry, 1) = '>' THEN
      IF strpos(entry, '<') = 0 THEN
        PERFORM dbmail.raise_error('22023', parameter, entry, 'not a valid e-mail address (a > without <)');
      END IF;
      -- `Name <address>`: the address is inside the last pair of angle brackets.
      lt := length(entry) - strpos(reverse(entry), '<') + 1;
      inner_part := substr(entry, lt + 1, length(entry) - lt - 1);
      IF strpos(inner_part, '>') > 0 THEN
        PERFORM dbmail.raise_error('22023', parameter, entry, 'not a valid e-mail address');
      END IF;
      address := btrim(inner_part);
      display_name := btrim(left(entry, lt - 1));
      -- Quoted, a name of 256 characters takes at most 514 (each one escaped, and the quotes).
      IF length(display_name) > 514 THEN
        PERFORM dbmail.raise_error('22023', parameter, entry, 'the display name is longer than 256 characters');
      END IF;
      IF display_name ~ '^".*"$' THEN
        display_name := regexp_replace(substr(display_name, 2, length(display_name) - 2), '\\(.)', '\1', 'g');
      ELSIF display_name ~ '[<>"]' THEN
        PERFORM dbmail.raise_error('22023', parameter, entry,
          'a display name with special characters must be in double quotes');
      ELSIF header_field AND strpos(display_name, ':') > 0 THEN
        PERFORM dbmail.raise_error('22023', parameter, entry,
          'a display name followed by a colon is group syntax, which is not allowed here (put a name with a colon in double quotes)');
      END IF;
      IF length(display_name) > 256 THEN
        PERFORM dbmail.raise_error('22023', parameter, entry, 'the display name is longer than 256 characters');
      END IF;
      display_name := NULLIF(display_name, '');
    END IF;
    problem := dbmail.address_problem(address);
    IF problem IS NOT NULL THEN
      PERFORM dbmail.raise_error('22023', parameter, entry, problem);
    END IF;
    parsed := parsed || jsonb_build_object('name', display_name, 'address', address);
  END LOOP;
  RETURN to_jsonb(parsed);
END;
$$;

-- One list, without a limit (operators' addresses, and anything else that is not a message's recipients).
CREATE FUNCTION dbmail.parse_address_list(parameter text, list text) RETURNS jsonb
LANGUAGE sql IMMUTABLE
AS $$
  SELECT dbmail.parse_addresses(parameter, list, 0, 0, false);
$$;

-- Exactly one address (from_address, reply_to, an account's e-mail and reply-to addresses), which goes
-- into a header as given.
CREATE FUNCTION dbmail.parse_single_address(parameter text, value text) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE
AS $$
DECLARE
  parsed jsonb := dbmail.parse_addresses(parameter, value, 0, 0, true);
BEGIN
  IF jsonb_array_length(parsed) > 1 THEN
    PERFORM dbmail.raise_error('22023', parameter, value, 'only one address is allowed here');
  END IF;
  IF jsonb_array_length(parsed) = 0 AND btrim(value, E' \t') <> '' THEN
    PERFORM dbmail.raise_error('22023', parameter, value, 'no e-mail address given');
  END IF;
  RETURN parsed -> 0;
END;
$$;

-- One address without a display name (an account's own addresses: its display name is separate).
CREATE FUNCTION dbmail.parse_bare_address(parameter text, value text) RETURNS text
LANGUAGE plpgsql IMMUTABLE
AS $$
DECLARE
  parsed jsonb := dbmail.parse_single_address(parameter, value);
BEGIN
  IF parsed ->> 'name' IS NOT NULL OR btrim(value) ~ '>$' THEN
    PERFORM dbmail.raise_error('22023', parameter, value,
      'give the address alone (the display name is a parameter of its own)');
  END IF;
  RETURN parsed ->> 'address';
END;
$$;

-- The domain of an address: what follows the last @ (a quoted local part may itself contain @).
CREATE FUNCTION dbmail.address_domain(address text) RETURNS text
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
AS $$
BEGIN
  RETURN substring(address, '@([^@]*)$');
END;
$$;

-- Whether an address is plain: ASCII dot-atoms, labels of at most 63 characters that begin and end with a
-- letter or digit, at most 64 characters before the @ and 254 in all. A subset of what address_problem
-- accepts, recognised in one expression (LANGUAGE sql: inlined where it is used). The pattern has no
-- bounded repeats ({0,61}): PostgreSQL's regex engine expands them into states, and the address pattern
-- with them cost eight times as much to match; a label's length is looked at only when the domain is
-- long enough to have one over 63. The pattern is a function of its own for send_usual_mail, which
-- matches it alone (on an address of at most 63 bytes, which is within every length looked at here);
-- IMMUTABLE, so the planner puts it in as a constant.
CREATE FUNCTION dbmail.plain_address_pattern() RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
  SELECT '^[A-Za-z0-9!#$%&''*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&''*+/=?^_`{|}~-]+)*@[A-Za-z0-9]+(-+[A-Za-z0-9]+)*(\.[A-Za-z0-9]+(-+[A-Za-z0-9]+)*)*$';
$$;
CREATE FUNCTION dbmail.is_plain_address(address text) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
  SELECT address ~ dbmail.plain_address_pattern()
     AND length(address) <= 254 AND strpos(address, '@') <= 65
     AND (length(address) - strpos(address, '@') <= 63 OR address !~ '[^.@]{64}');
$$;

-- The envelope of one plain address in recipients, the one parse_envelope gives it, built at a fraction
-- of the cost (a plain address needs no JSON escaping). LANGUAGE sql: inlined where it is used.
CREATE FUNCTION dbmail.plain_envelope(address text) RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
  SELECT ('{"to": [{"name": null, "address": "' || address || '"}], "cc": [], "bcc": []}')::jsonb;
$$;

-- A message's envelope from its three lists: {"to": [...], "cc": [...], "bcc": [...]}, each as
-- parse_addresses gives it. MaxRecipientsPerMail (max_count, 0 = unlimited) counts every address of the
-- three lists as it is parsed, and the list that goes over is named. A message needs one recipient.
-- (queue_mail builds the usual one, a single plain address in recipients, without it.)
CREATE FUNCTION dbmail.parse_envelope(recipients text, copy_recipients text, blind_copy_recipients text,
  max_count bigint) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE
AS $$
DECLARE
  to_list jsonb;
  cc_list jsonb := '[]';
  bcc_list jsonb := '[]';
BEGIN
  to_list := dbmail.parse_addresses('recipients', recipients, 0, max_count, false);
  -- Lists not given are empty, without a call.
  IF copy_recipients IS NOT NULL THEN
    cc_list := dbmail.parse_addresses('copy_recipients', copy_recipients, jsonb_array_length(to_list), max_count,
      false);
  END IF;
  IF blind_copy_recipients IS NOT NULL THEN
    bcc_list := dbmail.parse_addresses('blind_copy_recipients', blind_copy_recipients,
      jsonb_array_length(to_list) + jsonb_array_length(cc_list), max_count, false);
  END IF;
  IF to_list = '[]' AND cc_list = '[]' AND bcc_list = '[]' THEN
    PERFORM dbmail.raise_error('22004', 'recipients, copy_recipients, blind_copy_recipients', NULL,
      'a message needs at least one recipient');
  END IF;
  RETURN jsonb_build_object('to', to_list, 'cc', cc_list, 'bcc', bcc_list);
END;
$$;

-- Records this file in dbmail.migrations; the checksum is the sha256 of the text above this line
-- (written by `npm run migrations:seal`).
SELECT dbmail.record_migration(5, 'addresses', '55beba246beee9b30dfb4454bbd0ed46723dec66a5f8b58a6ffa3056920e2629');
