/**
 * A Content-Disposition for downloading a file under a name that came from a user: always
 * `attachment` (never shown in the console's origin), a plain ASCII fallback without quotes,
 * backslashes, control characters or path parts, and the full name percent-encoded (RFC 6266).
 */
export function attachmentDisposition(filename: string): string {
  const base = filename.split(/[/\\]/).pop() ?? "";
  const ascii = base
    .normalize("NFKD")
    .replace(/[^\x20-\x7e]/g, "_")
    .replace(/["\\;%]/g, "_")
    .trim();
  const fallback = ascii === "" || /^\.+$/.test(ascii) ? "attachment" : ascii;
  const encoded = encodeURIComponent(base === "" ? fallback : base).replace(
    /['()*]/g,
    (ch) => `%${ch.charCodeAt(0).toString(16).toUpperCase()}`,
  );
  return `attachment; filename="${fallback}"; filename*=UTF-8''${encoded}`;
}
