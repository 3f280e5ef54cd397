// The one message shape every system sends, so that all of them put the same bytes on the wire (give or
// take the headers each adds: Message-ID, X-DBMail-Mailitem-Id, ...).
export const FROM = "bench@example.com";
export const recipient = (i: number) => `r${i}@example.org`;
export const subject = (i: number) => `Bench mail ${i}`;
export const BODY =
  "Hello,\n\nthis is a benchmark message of pg-dbmail. It is about as long as a short notification: " +
  "a line of context, a line with a figure (42), and a signature.\n\n-- \nThe benchmark\n";

/** What a reference worker sends for job/message i. */
export function message(i: number) {
  return { from: FROM, to: recipient(i), subject: subject(i), text: BODY };
}
