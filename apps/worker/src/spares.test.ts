import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { connect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { decodeMessage, FrameReader } from "@skiff/protocol";
import pino from "pino";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { ContainerExit, ContainerHandle, ContainerRuntime, ContainerSpec } from "./runtime/types.js";
import { SPARE_SOCKET, SpareRunners, type SpareSpec } from "./spares.js";

/** A runtime whose "containers" connect to their spare socket from this process, as a spare runner would. */
class FakeRuntime implements ContainerRuntime {
  readonly name = "runc" as const;
  readonly started: ContainerSpec[] = [];
  readonly killed: string[] = [];
  /** What each spare was sent, by id. */
  readonly received = new Map<string, unknown>();
  private readonly exits = new Map<string, (exit: ContainerExit) => void>();
  /** How long a start takes before its runner connects. */
  bootMs = 0;

  async available() {
    return { ok: true as const };
  }
  async start(spec: ContainerSpec): Promise<ContainerHandle> {
    this.started.push(spec);
    const exited = new Promise<ContainerExit>((resolve) => this.exits.set(spec.id, resolve));
    const sockDir = spec.mounts.find((m) => m.target === "/.skiff/sock")!.source;
    setTimeout(() => {
      const socket: Socket = connect(join(sockDir, SPARE_SOCKET));
      const reader = new FrameReader();
      socket.on("data", (chunk: Buffer) => {
        for (const frame of reader.push(chunk)) this.received.set(spec.id, decodeMessage(frame));
      });
      socket.on("error", () => {});
    }, this.bootMs);
    return { id: spec.id, stdout: new PassThrough(), stderr: new PassThrough(), exited };
  }
  async kill(id: string): Promise<void> {
    this.killed.push(id);
    this.exits.get(id)?.({ exitCode: null, signal: "SIGKILL", oomKilled: false });
  }
  async cleanupStale(): Promise<void> {}
}

const spec: SpareSpec = (id, dirs) => ({
  id,
  rootfs: "/rootfs",
  command: ["node", "runner.mjs"],
  env: { SKIFF_SPARE_SOCKET: "/.skiff/sock/spare.sock" },
  cwd: "/",
  mounts: [
    { source: dirs.sockDir, target: "/.skiff/sock", readonly: false },
    { source: dirs.bundleDir, target: "/.skiff/bundle", readonly: true },
  ],
  cpu: 1,
  memoryMiB: 256,
  network: "private",
});

describe("SpareRunners", () => {
  let dir = "";
  let runtime: FakeRuntime;
  let spares: SpareRunners;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "skiff-spares-"));
    runtime = new FakeRuntime();
    spares = new SpareRunners({ runtime, dir: join(dir, "spares"), log: pino({ level: "silent" }), keys: 2 });
  });
  afterEach(async () => {
    await spares.close();
    await rm(dir, { recursive: true, force: true });
  });

  it("boots one for a key on its first use, hands it out once, and boots the next", async () => {
    expect(await spares.take("a", spec)).toBeUndefined();
    const spare = await spares.take("a", spec);
    expect(spare?.id).toBe(runtime.started[0]!.id);
    // The one taken is replaced: a second take gets another container, never the same.
    const next = await spares.take("a", spec);
    expect(next?.id).toBeDefined();
    expect(next?.id).not.toBe(spare?.id);
  });

  it("waits for one still booting rather than have the caller boot", async () => {
    runtime.bootMs = 300;
    spares.want("a", spec);
    const began = Date.now();
    const spare = await spares.take("a", spec);
    expect(spare).toBeDefined();
    expect(Date.now() - began).toBeGreaterThanOrEqual(250);
  });

  it("gives a spare its code and environment: the files linked into its bundle directory, the env sent", async () => {
    spares.want("a", spec);
    const spare = (await spares.take("a", spec))!;
    const code = join(dir, "code");
    await import("node:fs/promises").then((fs) => fs.mkdir(code));
    await writeFile(join(code, "bundle.mjs"), "export {};");
    await spare.assign(code, { SKIFF_FUNCTION: "f", SECRET: "s" });
    expect(await readFile(join(spare.bundleDir, "bundle.mjs"), "utf8")).toBe("export {};");
    await until(() => runtime.received.has(spare.id));
    expect(runtime.received.get(spare.id)).toEqual({ t: "assign", env: { SKIFF_FUNCTION: "f", SECRET: "s" } });
  });

  it("keeps spares for the most recent keys only, and forgets one whose container ended", async () => {
    spares.want("a", spec);
    await spares.take("a", spec).then((spare) => spare && runtime.kill(spare.id));
    spares.want("b", spec);
    spares.want("c", spec);
    await until(() => runtime.started.length >= 4);
    // "a" fell out of the two most recent: its spare was stopped.
    await until(() => runtime.killed.length >= 2);
    const b = await spares.take("b", spec);
    expect(b).toBeDefined();
    await runtime.kill((await spares.take("c", spec))!.id);
  });
});

async function until(check: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error("timed out");
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
