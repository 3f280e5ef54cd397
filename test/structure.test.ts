// The shape of the code, checked: dependencies point one way (the SMTP side of the sender never reaches
// into its database side), no module imports itself back through others, and no file (source, test or
// migration) outgrows one concern.
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { describe, expect, it } from "vitest";

const root = new URL("..", import.meta.url).pathname;
const sourceDirs = [
  "packages/sender/src",
  "packages/sql/src",
  "packages/dev/src",
  "packages/console/src",
  "bench/src",
];

function sourceFiles(dir: string): string[] {
  return readdirSync(join(root, dir), { withFileTypes: true, recursive: true })
    .filter((entry) => entry.isFile() && /\.tsx?$/.test(entry.name) && !entry.name.endsWith(".d.ts"))
    .map((entry) => relative(root, join(entry.parentPath, entry.name)));
}

/** The project files a file imports (relative imports only; `import type` included). */
function importsOf(file: string): string[] {
  const text = readFileSync(join(root, file), "utf8");
  return [...text.matchAll(/^(?:import|export)[^;]*?from "(\.{1,2}\/[^"]+)"/gms)].map((m) => {
    const target = resolve(root, dirname(file), (m[1] as string).replace(/\.js$/, ".ts"));
    // A .js import names a .ts source, or a .tsx one (the console's pages).
    return relative(root, existsSync(target) ? target : `${target}x`);
  });
}

const files = sourceDirs.flatMap(sourceFiles);
const graph = new Map(files.map((file) => [file, importsOf(file)]));

describe("the code's structure", () => {
  it("has no import cycles", () => {
    const cycles: string[] = [];
    const state = new Map<string, "visiting" | "done">();
    const visit = (file: string, path: string[]) => {
      if (state.get(file) === "done") return;
      if (state.get(file) === "visiting") {
        cycles.push([...path.slice(path.indexOf(file)), file].join(" -> "));
        return;
      }
      state.set(file, "visiting");
      for (const next of graph.get(file) ?? []) visit(next, [...path, file]);
      state.set(file, "done");
    };
    for (const file of files) visit(file, []);
    expect(cycles).toEqual([]);
  });

  it("keeps the SMTP side of the sender free of its database side", () => {
    const reaching = [...graph]
      .filter(([file]) => file.startsWith("packages/sender/src/smtp/"))
      .flatMap(([file, imports]) =>
        imports.filter((i) => i.startsWith("packages/sender/src/sender/")).map((i) => `${file} -> ${i}`),
      );
    expect(reaching).toEqual([]);
  });

  it("keeps source, test and migration files under 400 lines (sql/schema.sql is generated)", () => {
    const written = [
      ...files,
      ...["packages/sender/test", "packages/sql/test", "test"].flatMap(sourceFiles),
      ...readdirSync(join(root, "sql/migrations")).map((name) => `sql/migrations/${name}`),
    ];
    const long = written
      .map((file) => [file, readFileSync(join(root, file), "utf8").split("\n").length] as const)
      .filter(([, lines]) => lines > 400);
    expect(long).toEqual([]);
  });
});
