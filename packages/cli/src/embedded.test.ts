import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { loadConfig } from "./config.js";
import { ensureServer } from "./embedded.js";

describe("ensureServer", () => {
  let home: string;
  let server: Server | undefined;
  const said: string[] = [];
  const say = (line: string) => said.push(line);

  beforeEach(async () => {
    home = await mkdtemp(join(tmpdir(), "skiff-embedded-"));
    said.length = 0;
  });
  afterEach(async () => {
    await new Promise((resolve) => (server ? server.close(resolve) : resolve(undefined)));
    server = undefined;
    await rm(home, { recursive: true, force: true });
  });

  it("uses the `skiff up` running on SKIFF_HOME, even of another build, and never restarts it", async () => {
    server = createServer((_request, response) => response.end(JSON.stringify({ workers: 1 })));
    await new Promise<void>((resolve) => server!.listen(0, "127.0.0.1", resolve));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    // Its pid is this test's: restarting it would end the test.
    await writeFile(
      join(home, "embedded.json"),
      JSON.stringify({ url, pid: process.pid, build: "another", foreground: true }),
    );
    expect(await ensureServer(loadConfig({ SKIFF_HOME: home }), say)).toBe(url);
    expect(said).toEqual([
      `the \`skiff up\` on ${url} (pid ${process.pid}) runs another build of Skiff: restart it to run this one`,
    ]);
  });

  it("says at once why the embedded server it started exited, from its log, without the stack", async () => {
    const failing = [
      "-e",
      `console.error("Error: the embedded store is open in another process (pid 1)");
       console.error("    at lockDataDir (file:///x.mjs:1:1)");
       process.exit(1);`,
    ];
    const started = Date.now();
    const failure = await ensureServer(loadConfig({ SKIFF_HOME: home }), say, { command: failing }).catch(
      (error: Error) => error,
    );
    expect(Date.now() - started).toBeLessThan(10_000);
    expect((failure as Error).message).toMatch(
      /^the embedded server exited \(code 1\) before it served:\nError: the embedded store is open in another process \(pid 1\)\n\(log: .*embedded\.log\)\. To use a server that runs elsewhere, set SKIFF_SERVER_URL$/,
    );
  });
});
