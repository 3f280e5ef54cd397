import type { Context } from "hono";
import { deleteCookie, getCookie, setCookie } from "hono/cookie";

/**
 * The session cookie and the sign-in form's token cookie: HttpOnly, SameSite=Strict, Path=/; under
 * TLS also Secure, with the __Host- prefix (which browsers accept only from https, without Domain).
 */
export class Cookies {
  private readonly prefix: string;

  constructor(private readonly secure: boolean) {
    this.prefix = secure ? "__Host-" : "";
  }

  get session(): string {
    return `${this.prefix}dbmail_session`;
  }

  get signIn(): string {
    return `${this.prefix}dbmail_signin`;
  }

  read(c: Context, name: string): string | undefined {
    return getCookie(c, name);
  }

  write(c: Context, name: string, value: string): void {
    setCookie(c, name, value, { httpOnly: true, sameSite: "Strict", path: "/", secure: this.secure });
  }

  clear(c: Context, name: string): void {
    deleteCookie(c, name, { httpOnly: true, sameSite: "Strict", path: "/", secure: this.secure });
  }
}
