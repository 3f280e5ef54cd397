import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { Hono } from "hono";
import { consoleCss } from "../views/style.js";

// htmx comes from its npm package, installed with the console: no CDN, works offline.
const htmx = readFileSync(createRequire(import.meta.url).resolve("htmx.org/dist/htmx.min.js"));

/** The console's script and style sheet, the only ones its pages load. */
export const assets = new Hono()
  .get("/htmx.min.js", (c) => {
    c.header("Content-Type", "text/javascript; charset=utf-8");
    return c.body(htmx);
  })
  .get("/console.css", (c) => {
    c.header("Content-Type", "text/css; charset=utf-8");
    return c.body(consoleCss);
  });
