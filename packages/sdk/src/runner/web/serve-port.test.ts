import { mkdtemp, rm } from "node:fs/promises";
import { createServer, request } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { servePort, waitForPort } from "./serve-port.js";

describe("servePort", () => {
  it("waits for the port, then pipes each connection of the Unix socket to it", async () => {
    const dir = await mkdtemp(join(tmpdir(), "skiff-port-"));
    const server = createServer((req, res) => res.end(`${req.method} ${req.url} ${req.headers.upgrade ?? ""}`));
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const { port } = server.address() as AddressInfo;
    try {
      await waitForPort(port);
      const socketPath = join(dir, "web.sock");
      const serving = await servePort({ socketPath, port });
      const body = await new Promise<string>((resolve, reject) => {
        request({ socketPath, path: "/x?y=1", method: "PUT", agent: false }, async (res) => {
          let text = "";
          for await (const chunk of res) text += chunk;
          resolve(text);
        })
          .on("error", reject)
          .end();
      });
      expect(body).toBe("PUT /x?y=1 ");
      await serving.close();
    } finally {
      server.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
