/** Text from outside kept at most this long (a longer text is cut, and says how much was cut). */
const MAX_LENGTH = 2000;

// Control characters (C0 but tab, LF and CR, which become spaces; DEL; C1) and Unicode format characters
// (bidi overrides and isolates, zero-width spaces, BOM...), but the zero-width joiner of emoji sequences.
const CONTROL = /(?!\u200D)[\p{Cc}\p{Cf}]/gu;
const UNPAIRED_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;

/**
 * Text that came from outside (what an SMTP server said, a subject shown in a terminal) made safe to
 * store and to show. PostgreSQL cannot store NUL at all (a reply with one made the outcome unrecordable),
 * an escape sequence would drive an operator's terminal, and a server may answer megabytes. So control
 * and format characters become visible escapes (`\x00`, `\u202e`), line breaks and runs of whitespace one
 * space, an unpaired surrogate U+FFFD, and the text is cut at `max` characters.
 */
export function safeText(text: string, max = MAX_LENGTH): string {
  const safe = text
    .replace(UNPAIRED_SURROGATE, "\uFFFD")
    .replace(/[\t\n\r]+/g, " ")
    .replace(CONTROL, (c) => {
      const code = c.charCodeAt(0);
      return code < 0x100
        ? `\\x${code.toString(16).padStart(2, "0")}`
        : `\\u${code.toString(16).padStart(4, "0")}`;
    })
    .replace(/ {2,}/g, " ")
    .trim();
  if (safe.length <= max) return safe;
  return `${safe.slice(0, max)}… (${safe.length - max} more characters)`;
}
