import { randomBytes } from "node:crypto";
import * as base64 from "nodemailer/lib/base64";
import type Mail from "nodemailer/lib/mailer/index.js";
import * as mimeFuncs from "nodemailer/lib/mime-funcs";
import MimeNode from "nodemailer/lib/mime-node";
import * as qp from "nodemailer/lib/qp";

/**
 * What a message is made of, in nodemailer's terms, whichever way it is then composed: the header
 * fields, the bodies and the headers of its own. Never attachments or options.
 */
export interface MessageFields {
  from: string | Mail.Address;
  replyTo: string | undefined;
  to: Mail.Address[];
  cc: Mail.Address[];
  bcc: Mail.Address[];
  subject: string;
  text: string;
  html?: string;
  priority: "high" | "low" | undefined;
  messageId: string;
  headers: Record<string, string>;
}

// Composes a message without attachments straight into its bytes: the same bytes nodemailer writes for
// the same fields (MailComposer builds a tree of MimeNodes, the mailer adds the priority headers, and the
// tree is streamed), but without the tree and the streams: a --cpu-prof profile of a drain put them at
// about a third of the sender's CPU per message. Every encoding is nodemailer's own (its header value encoder, line folding,
// quoted-printable and base64), applied in the order MimeNode applies them; the tests compare the bytes
// of both ways for awkward inputs. The message is then handed to nodemailer as `raw`, with its envelope.

/** One header field before encoding, as MimeNode keeps them. */
interface Header {
  key: string;
  value: string | Mail.Address | Mail.Address[];
}

/** A body part: its Content-Type and content. */
interface Part {
  contentType: string;
  content: string;
}

/** The node whose header encoding (addresses, encoded words, message ids) every message uses. */
const encoder = new MimeNode() as MimeNode & {
  // Internal to MimeNode, but they are the rules its own messages follow: the header name's casing and
  // the choice between Q and B encoding for a text.
  _normalizeHeaderKey(key: string): string;
  _getTextEncoding(value: string): "Q" | "B";
};

// The Content-Type values as MimeNode writes them (parsed and rebuilt).
const contentTypeValue = (type: string) =>
  mimeFuncs.buildHeaderValue(mimeFuncs.parseHeaderValue(type, { stripComments: true }));
const TEXT_TYPE = "text/plain; charset=utf-8";
const HTML_TYPE = "text/html; charset=utf-8";
/** An empty message: what MailComposer makes of no text and no HTML. */
const EMPTY_TYPE = "text/plain";
const CONTENT_TYPE_VALUE = new Map([TEXT_TYPE, HTML_TYPE, EMPTY_TYPE].map((t) => [t, contentTypeValue(t)]));

/** The headers in order, with MimeNode's setHeader and addHeader semantics. */
class Headers {
  readonly list: Header[] = [];

  /** Replaces the first field of that name and drops the others, or appends. */
  set(key: string, value: Header["value"]): void {
    const at = this.list.findIndex((h) => h.key === key);
    if (at < 0) {
      this.list.push({ key, value });
      return;
    }
    this.list[at] = { key, value };
    for (let i = this.list.length - 1; i > at; i--) if (this.list[i]?.key === key) this.list.splice(i, 1);
  }

  add(key: string, value: string): void {
    this.list.push({ key, value });
  }

  has(key: string): boolean {
    return this.list.some((h) => h.key === key);
  }
}

/** MimeNode's Content-Transfer-Encoding for a text part (false: no content, no header). */
function transferEncoding(content: string): false | "7bit" | "quoted-printable" | "base64" {
  if (!content) return false;
  if (mimeFuncs.isPlainText(content) && !mimeFuncs.hasLongerLines(content, 76)) return "7bit";
  return encoder._getTextEncoding(content) === "Q" ? "quoted-printable" : "base64";
}

/**
 * A text body in its transfer encoding, by nodemailer's own encoder: its output depends on where lines
 * and trailing whitespace fall in the input as the stream saw it (one chunk, the whole text), which the
 * plain encode-then-wrap functions do not reproduce. The encoder's two Transform methods are called
 * directly (both answer at once): the same code, without a stream around it.
 */
function encodeBody(content: string, encoding: ReturnType<typeof transferEncoding>): string {
  if (encoding !== "quoted-printable" && encoding !== "base64") return content;
  const stream = encoding === "base64" ? new base64.Encoder() : new qp.Encoder();
  const out: string[] = [];
  stream.push = (chunk: Buffer | string | null) => {
    if (chunk !== null) out.push(chunk.toString());
    return true;
  };
  const failed = (error?: Error | null) => {
    if (error) throw error;
  };
  // "buffer": what a stream hands a transform for a Buffer chunk.
  stream._transform(Buffer.from(content, "utf8"), "buffer" as BufferEncoding, failed);
  stream._flush(failed);
  return out.join("");
}

/** The header block of a node, without the blank line (MimeNode.buildHeaders). */
function headerBlock(headers: Header[], contentType: string): string {
  const lines: string[] = [];
  for (const { key, value } of headers) {
    // Bcc is never written: its addresses go only into the envelope.
    if (key === "Bcc") continue;
    const encoded = key === "Content-Type" ? contentType : encoder.encodeHeaderValue(key, value);
    if (!encoded.trim()) continue;
    lines.push(mimeFuncs.foldLines(`${key}: ${encoded}`, 76));
  }
  return lines.join("\r\n");
}

/** A part of a multipart message: its own Content-Type and Content-Transfer-Encoding, then its body. */
function partBytes(part: Part): string {
  const encoding = transferEncoding(part.content);
  const headers: Header[] = [{ key: "Content-Type", value: part.contentType }];
  if (encoding) headers.push({ key: "Content-Transfer-Encoding", value: encoding });
  const contentType = CONTENT_TYPE_VALUE.get(part.contentType) as string;
  return `${headerBlock(headers, contentType)}\r\n\r\n${encodeBody(part.content, encoding)}`;
}

export interface RawMessage {
  raw: Buffer;
  envelope: Mail.Envelope;
  messageId: string;
}

/**
 * The finished message for these fields, and its envelope (From's address; To, Cc and Bcc, each address
 * once), as nodemailer would derive them. `date` and `baseBoundary` are for tests.
 */
export function composeRawMessage(
  fields: MessageFields,
  { date = new Date(), baseBoundary }: { date?: Date; baseBoundary?: string } = {},
): RawMessage {
  // MailComposer: the text, then the HTML; both make multipart/alternative; neither, an empty text.
  const parts: Part[] = [];
  if (fields.text) parts.push({ contentType: TEXT_TYPE, content: fields.text });
  if (fields.html) parts.push({ contentType: HTML_TYPE, content: fields.html });
  const single = parts.length > 1 ? undefined : (parts[0] ?? { contentType: EMPTY_TYPE, content: "" });
  // MimeNode's boundary for its first node; random bytes only when there is one (they cost).
  const boundary = single ? "" : `--_NmP-${baseBoundary ?? randomBytes(8).toString("hex")}-Part_1`;

  // The root node's fields, in the order MailComposer and the mailer set them.
  const headers = new Headers();
  headers.set("Content-Type", single?.contentType ?? "multipart/alternative");
  for (const [key, value] of Object.entries(fields.headers))
    headers.add(encoder._normalizeHeaderKey(key), value);
  const addressed: [string, Header["value"] | undefined][] = [
    ["From", fields.from],
    ["To", fields.to],
    ["Cc", fields.cc],
    ["Bcc", fields.bcc],
    ["Reply-To", fields.replyTo],
    ["Subject", fields.subject],
    ["Message-ID", fields.messageId],
  ];
  for (const [key, value] of addressed) if (value) headers.set(key, value);
  if (fields.priority === "high") {
    headers.set("X-Priority", "1 (Highest)");
    headers.set("X-Msmail-Priority", "High");
    headers.set("Importance", "High");
  } else if (fields.priority === "low") {
    headers.set("X-Priority", "5 (Lowest)");
    headers.set("X-Msmail-Priority", "Low");
    headers.set("Importance", "Low");
  }
  // MimeNode.buildHeaders: the mandatory fields, then Content-Type moved to the end.
  const encoding = single ? transferEncoding(single.content) : false;
  if (encoding) headers.set("Content-Transfer-Encoding", encoding);
  if (!headers.has("Date")) headers.set("Date", date.toUTCString().replace(/GMT/, "+0000"));
  if (!headers.has("MIME-Version")) headers.set("MIME-Version", "1.0");
  const list = headers.list;
  for (let i = list.length - 2; i >= 0; i--) {
    const header = list[i] as Header;
    if (header.key === "Content-Type") {
      list.splice(i, 1);
      list.push(header);
    }
  }
  const contentType = single
    ? (CONTENT_TYPE_VALUE.get(single.contentType) as string)
    : mimeFuncs.buildHeaderValue({ value: "multipart/alternative", params: { boundary } });

  let message = `${headerBlock(list, contentType)}\r\n\r\n`;
  if (single) {
    message += encodeBody(single.content, encoding);
  } else {
    message += parts.map((part) => `--${boundary}\r\n${partBytes(part)}`).join("\r\n");
    message += `\r\n--${boundary}--\r\n`;
  }
  // nodemailer ends every message with a line break.
  if (message.endsWith("\r")) message += "\n";
  else if (!message.endsWith("\n")) message += "\r\n";

  return {
    raw: Buffer.from(message, "utf8"),
    // nodemailer derives the same envelope from these as from the header fields.
    envelope: { from: fields.from, to: fields.to, cc: fields.cc, bcc: fields.bcc } as Mail.Envelope,
    messageId: fields.messageId,
  };
}
