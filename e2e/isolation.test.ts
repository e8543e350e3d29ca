import { connect } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bundleProgram, hasCommand, NO_TYPECHECK, Stack } from "./stack.js";

const FIXTURE = "e2e/fixtures/isolation.ts";
const root = process.getuid?.() === 0;
const runtimes = [
  { name: "gvisor", available: root && hasCommand("runsc"), network: true },
  { name: "runc", available: root && hasCommand("runc"), network: true },
  { name: "process", available: true, network: false },
];

/**
 * What a container may reach of other containers and of its own credentials, on every runtime here: real
 * CLI, server, worker and containers, with the app deployed in two workspaces.
 */
for (const runtime of runtimes) {
  describe.skipIf(!runtime.available)(`isolation on ${runtime.name}`, () => {
    let stack: Stack;
    let client: string;
    const team = { SKIFF_PROFILE: "team" };
    const call = <T>(fn: string, args: unknown[] = [], env: Record<string, string> = {}) =>
      stack.runProgram<T>(client, [fn, JSON.stringify(args)], 120_000, env);

    beforeAll(async () => {
      stack = await Stack.start({ runtime: runtime.name });
      client = await bundleProgram("e2e/fixtures/isolation-client.ts", stack.home);
      const deployed = await stack.run(["deploy", FIXTURE, NO_TYPECHECK], { timeoutMs: 300_000 });
      expect(deployed.code, deployed.stderr).toBe(0);
    }, 400_000);

    afterAll(async () => {
      await stack?.stop();
    });

    it.skipIf(!runtime.network)(
      "keeps a container from reaching another, in the same app or another workspace",
      async () => {
        const created = await stack.run(["workspace", "create", "team"]);
        expect(created.code, created.stderr).toBe(0);
        const deployed = await stack.run(["deploy", FIXTURE, NO_TYPECHECK], { timeoutMs: 300_000, env: team });
        expect(deployed.code, deployed.stderr).toBe(0);

        const listener = await call<{ address: string; self: string }>("listen");
        expect(listener.address).toMatch(/^10\.213\.\d+\.\d+$/);
        expect(listener.self).toBe("CONNECTED");
        // Both at once: a refused probe waits out its 3 s timeout.
        const [fromSameApp, fromOtherWorkspace] = await Promise.all([
          call<string>("probe", [listener.address]),
          call<string>("probe", [listener.address], team),
        ]);
        // The listener still runs and listens: the host reaches it (within a few tries: on a loaded machine the
        // host's neighbour entry for a reused address can take seconds to settle).
        expect(await probeFromHostUntilConnected(listener.address, 20_000)).toBe("CONNECTED");
        expect({ fromSameApp, fromOtherWorkspace }).toEqual({
          fromSameApp: expect.stringMatching(/^(TIMEOUT|EHOSTUNREACH|ECONNREFUSED|ENETUNREACH)$/),
          fromOtherWorkspace: expect.stringMatching(/^(TIMEOUT|EHOSTUNREACH|ECONNREFUSED|ENETUNREACH)$/),
        });
      },
      700_000,
    );

    it("keeps the container's token out of every environment a process can read", async () => {
      const seen = await call<Record<"pid1" | "runner" | "self" | "child" | "childEnv", string> & { token?: string }>(
        "environ",
      );
      // The SDK holds the token (calls from the function use it); no environment shows it, nor its secret part.
      expect(seen.token).toMatch(/^ct-[0-9a-f-]+:.{16,}$/);
      const secret = seen.token!.split(":")[1]!;
      const { token, ...texts } = seen;
      for (const [name, text] of Object.entries(texts)) {
        // Outside a container (process runtime) pid 1 is the host's init. A container that took a spare runner
        // began with the spare's environment: its runner's /proc environ shows that one, read by it or by a child
        // (the container's came later, over a socket), while processes it starts get the container's (childEnv).
        const spareBoot = name !== "childEnv" && text.includes("SKIFF_SPARE_SOCKET=");
        if ((name !== "pid1" || runtime.network) && !spareBoot) expect(text, name).toContain("SKIFF_CONTAINER_ID=");
        expect(text, name).not.toContain(secret);
        expect(text, name).not.toContain("SKIFF_CONTAINER_TOKEN");
      }
    }, 200_000);

    it("tells a function its container id", async () => {
      const me = await call<{ id?: string; env?: string; pid: number }>("whoami");
      const { containers } = await stack.api<{ containers: { id: string; function: string }[] }>("/v1/containers");
      expect(me.id).toBe(me.env);
      expect(containers.filter((c) => c.function === "whoami").map((c) => c.id)).toContain(me.id);
    }, 200_000);
  });
}

/** Probes from the host until one probe connects or `withinMs` has passed; the last outcome. */
async function probeFromHostUntilConnected(address: string, withinMs: number): Promise<string> {
  const deadline = Date.now() + withinMs;
  let outcome = await probeFromHost(address);
  while (outcome !== "CONNECTED" && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 500));
    outcome = await probeFromHost(address);
  }
  return outcome;
}

function probeFromHost(address: string): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect(7070, address);
    const timer = setTimeout(() => resolve("TIMEOUT"), 3000);
    socket.on("connect", () => {
      clearTimeout(timer);
      socket.destroy();
      resolve("CONNECTED");
    });
    socket.on("error", (error: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      resolve(error.code ?? error.message);
    });
  });
}
