import { mkdtemp, rm } from "node:fs/promises";
import { createServer, request, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { startWeb } from "./start-web.js";

let dir: string;
let server: Server | undefined;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "skiff-start-"));
});
afterEach(async () => {
  server?.close();
  server = undefined;
  await rm(dir, { recursive: true, force: true });
});

/** A free port on 127.0.0.1. */
const freePort = async () => {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", resolve));
  const { port } = probe.address() as AddressInfo;
  await new Promise((resolve) => probe.close(resolve));
  return port;
};

describe("startWeb for a webServer", () => {
  it("runs start, waits until the port accepts, then serves the socket through it", async () => {
    const port = await freePort();
    const start = () => {
      // Listens a little later than start returns: readiness is the port's, not start's.
      setTimeout(() => {
        server = createServer((_, res) => res.end("from the user's server")).listen(port, "127.0.0.1");
      }, 150);
    };
    const socketPath = join(dir, "web.sock");
    const serving = await startWeb({ web: { kind: "server", port }, start, timeoutMs: 1000 }, socketPath, 1);
    const body = await new Promise<string>((resolve, reject) => {
      request({ socketPath, path: "/", agent: false }, async (res) => {
        let text = "";
        for await (const chunk of res) text += chunk;
        resolve(text);
      })
        .on("error", reject)
        .end();
    });
    expect(body).toBe("from the user's server");
    await serving.close();
  });

  it("fails when start throws before the port accepts", async () => {
    const port = await freePort();
    const start = async () => {
      throw new Error("no model file");
    };
    await expect(
      startWeb({ web: { kind: "server", port }, start, timeoutMs: 1000 }, join(dir, "web.sock"), 1),
    ).rejects.toThrow("no model file");
  });
});
