import { createPrivateKey } from "node:crypto";
import DKIM from "nodemailer/lib/dkim/index.js";
import type Mail from "nodemailer/lib/mailer/index.js";

/** An account's DKIM signing key (rsa-sha256, relaxed/relaxed: nodemailer's DKIM signer). */
export interface DkimKey {
  domainName: string;
  keySelector: string;
  /** PEM. */
  privateKey: string;
}

/**
 * A nodemailer 'stream' plugin that signs every message of a transport with the account's key. Used
 * instead of the transport's own `dkim` option, which signs after the stream plugins: registered before
 * finalCheckPlugin, the signature is made first and the final lease check still holds back the very end
 * of the bytes that go out. The signer keeps the message in memory until its body hash is known (the
 * signature header goes first); it is given no cache directory, so no message is ever written to disk.
 */
export function dkimPlugin(key: DkimKey): Mail.PluginFunction {
  try {
    createPrivateKey(key.privateKey);
  } catch (error) {
    throw new Error(`the dkim_private_key is not a private key in PEM: ${(error as Error).message}`);
  }
  const signer = new DKIM(key);
  return (mail, done) => {
    mail.message.processFunc((input) => signer.sign(input));
    done();
  };
}
