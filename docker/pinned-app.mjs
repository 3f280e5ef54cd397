#!/usr/bin/env node
// Usage: node docker/pinned-app.mjs <repository's package-lock.json> <app dir> <tarball>...
//
// Writes <app dir>/package.json and package-lock.json for an app that depends on the given `npm pack`
// tarballs of this repository's packages, with every other package pinned to the version, integrity and
// place it has in the repository's package-lock.json: `npm ci --omit=dev` in <app dir> then installs what
// a user's `npm install` of the published packages would, at exactly the versions CI tested, and needs
// nothing but the tarballs (so it works offline, from the npm cache that `npm ci` filled). Packages that
// none of the tarballs needs (the development stack, the test tools) are simply not in the lock.
//
// Used by the Dockerfile (the production image) and by test/packaging.test.ts (which checks that image's
// contents without Docker).
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { basename, join } from "node:path";

const [lockPath, appDir, ...tarballs] = process.argv.slice(2);
if (!lockPath || !appDir || tarballs.length === 0) {
  process.stderr.write("usage: node docker/pinned-app.mjs <package-lock.json> <app dir> <tarball>...\n");
  process.exit(2);
}
const lock = JSON.parse(readFileSync(lockPath, "utf8"));
const all = lock.packages;

// The workspaces the tarballs were packed from, by package name: { path in the repository's lock, file }.
const workspaces = new Map();
for (const tarball of tarballs) {
  const path = Object.keys(all).find(
    (key) => !key.startsWith("node_modules/") && key !== "" && tarballName(all[key]) === basename(tarball),
  );
  if (!path) throw new Error(`${tarball}: no workspace of ${lockPath} packs to this file name`);
  workspaces.set(all[path].name, { path, file: `tarballs/${basename(tarball)}` });
}

/** Where node would find `name` from the package at `from`, in the repository's tree. */
function resolve(from, name) {
  for (let dir = from; ; dir = parentOf(dir)) {
    const candidate = `${dir ? `${dir}/` : ""}node_modules/${name}`;
    if (all[candidate]) return candidate;
    if (dir === "") return undefined;
  }
}

function parentOf(path) {
  const at = path.lastIndexOf("/node_modules/");
  return at === -1 ? "" : path.slice(0, at);
}

// The packages the tarballs need, transitively: production, optional (when locked: this platform's) and
// required peer dependencies.
const needed = new Map(); // path in the repository's lock -> path in the app's lock
const queue = [...workspaces.values()].map((w) => w.path);
while (queue.length > 0) {
  const from = queue.shift();
  const entry = all[from];
  const optionalPeers = new Set(
    Object.entries(entry.peerDependenciesMeta ?? {})
      .filter(([, meta]) => meta.optional)
      .map(([name]) => name),
  );
  const names = [
    ...Object.keys(entry.dependencies ?? {}),
    ...Object.keys(entry.optionalDependencies ?? {}),
    ...Object.keys(entry.peerDependencies ?? {}).filter((name) => !optionalPeers.has(name)),
  ];
  for (const name of names) {
    if (workspaces.has(name)) continue; // another tarball: placed below
    let path = resolve(from, name);
    if (path && all[path].link) path = all[path].resolved; // a workspace that is not among the tarballs
    if (!path) {
      if (name in (entry.optionalDependencies ?? {})) continue; // another platform's
      throw new Error(`${from} needs ${name}, which ${lockPath} does not have`);
    }
    if (!path.startsWith("node_modules/")) {
      throw new Error(`${from} needs the workspace ${name}: pack it too`);
    }
    if (!needed.has(path)) {
      needed.set(path, path);
      queue.push(path);
    }
  }
}

const dependencies = Object.fromEntries([...workspaces].map(([name, w]) => [name, `file:${w.file}`]));
const packages = { "": { name: "pg-dbmail-app", dependencies } };
for (const [name, w] of workspaces) {
  const { version, dependencies, optionalDependencies, peerDependencies, bin, engines, license } =
    all[w.path];
  packages[`node_modules/${name}`] = {
    version,
    resolved: `file:${w.file}`,
    ...{ license, dependencies, optionalDependencies, peerDependencies, bin, engines },
  };
}
for (const path of [...needed.keys()].sort()) {
  const entry = { ...all[path] };
  delete entry.dev;
  delete entry.devOptional;
  // A lock written with omit-lockfile-registry-resolved has no URL; npm's registry layout gives it.
  entry.resolved ??= registryUrl(path.slice(path.lastIndexOf("node_modules/") + 13), entry.version);
  packages[path] = entry;
}

mkdirSync(join(appDir, "tarballs"), { recursive: true });
for (const tarball of tarballs) copyFileSync(tarball, join(appDir, "tarballs", basename(tarball)));
writeFileSync(
  join(appDir, "package.json"),
  `${JSON.stringify({ name: "pg-dbmail-app", private: true, dependencies }, null, 2)}\n`,
);
writeFileSync(
  join(appDir, "package-lock.json"),
  `${JSON.stringify({ name: "pg-dbmail-app", lockfileVersion: 3, requires: true, packages }, null, 2)}\n`,
);

function tarballName(entry) {
  return `${entry.name.replace(/^@/, "").replace("/", "-")}-${entry.version}.tgz`;
}

function registryUrl(name, version) {
  return `https://registry.npmjs.org/${name}/-/${name.split("/").pop()}-${version}.tgz`;
}
