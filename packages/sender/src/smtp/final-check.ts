import { type Readable, Transform, type TransformCallback } from "node:stream";
import type Mail from "nodemailer/lib/mailer/index.js";

/**
 * Asked right before the last bytes of a message (the end of DATA) go to the SMTP server: true to let
 * them go, false to abort the message. May answer at once or after a database round trip.
 */
export type FinalCheck = () => boolean | Promise<boolean>;

/** The key of Mail.Options that carries a message's FinalCheck to finalCheckPlugin. */
const KEY = "dbmailFinalCheck";

/** Thrown into the message stream when the final check says no: the SMTP client then aborts. */
export class FinalCheckRefused extends Error {
  override name = "FinalCheckRefused";
}

/** The message options with a final check attached (see finalCheckPlugin). */
export function withFinalCheck(options: Mail.Options, check: FinalCheck): Mail.Options {
  // Unknown keys of the options are carried into mail.data, where the plugin finds this one. (The
  // options are changed in place: they are composed afresh for every message.)
  return Object.assign(options, { [KEY]: check });
}

/**
 * A nodemailer 'stream' plugin: the compiled message of a mail that carries a FinalCheck is piped
 * through a stream that holds back its end until the check answers. Refused, the stream fails, so the
 * SMTP client closes the connection without sending the terminating <CRLF>.<CRLF>, and the server
 * discards what it received. Everything before the end flows through untouched, so only the check
 * itself can add time, and only when it has to ask the database.
 */
export const finalCheckPlugin: Mail.PluginFunction = (mail, done) => {
  const check = (mail.data as Record<string, unknown>)[KEY] as FinalCheck | undefined;
  // A process function, not a transform: nodemailer joins transforms with stream.pipeline, whose teardown
  // builds an error object (stack trace and all) for a stage still closing, on every message; piping
  // costs less on the hot path. The process function carries its input's errors to its output itself.
  if (check) {
    mail.message.processFunc((input: Readable) => {
      const output = new FinalCheckStream(check);
      input.once("error", (error) => output.destroy(error));
      return input.pipe(output);
    });
  }
  done();
};

class FinalCheckStream extends Transform {
  constructor(private readonly check: FinalCheck) {
    super();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    callback(null, chunk);
  }

  override _flush(callback: TransformCallback): void {
    const refused = () =>
      new FinalCheckRefused("the message was aborted before its end: the final check refused it");
    let verdict: boolean | Promise<boolean>;
    try {
      verdict = this.check();
    } catch (error) {
      callback(error as Error);
      return;
    }
    if (typeof verdict === "boolean") {
      callback(verdict ? null : refused());
      return;
    }
    verdict.then(
      (ok) => callback(ok ? null : refused()),
      (error: unknown) => callback(error as Error),
    );
  }
}
