import { finished } from "node:stream/promises";
import { describe, expect, it } from "vitest";
import { runCommand } from "./command.js";
import { spawnCommand } from "./spawner.js";

describe("spawner", () => {
  it("runs a command from the helper and returns its output and exit code", async () => {
    const result = await runCommand("sh", ["-c", "echo out; echo err >&2; exit 3"]);
    expect(result).toEqual({ code: 3, signal: null, stdout: "out\n", stderr: "err\n" });
  });

  it("feeds a command its input, at once or as a stream", async () => {
    expect((await runCommand("cat", [], { input: "given\n" })).stdout).toBe("given\n");
    const child = spawnCommand("cat", [], { stdin: true });
    await child.started;
    let out = "";
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => (out += chunk));
    child.stdin?.write("one ");
    child.stdin?.end("two");
    expect(await child.exited).toEqual({ code: 0, signal: null });
    expect(out).toBe("one two");
  });

  it("rejects a command that cannot start, naming why", async () => {
    await expect(runCommand("/nonexistent/skiff-binary", [])).rejects.toMatchObject({ code: "ENOENT" });
  });

  it("keeps its helper through a Ctrl-C (SIGINT to the process group), which the worker's shutdown needs", async () => {
    const helperPid = Number((await runCommand("sh", ["-c", "echo $PPID"])).stdout.trim());
    expect(helperPid).not.toBe(process.pid);
    process.kill(helperPid, "SIGINT");
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(Number((await runCommand("sh", ["-c", "echo $PPID"])).stdout.trim())).toBe(helperPid);
  });

  it("reports a command killed by a signal", async () => {
    const result = await runCommand("sh", ["-c", "kill -KILL $$"]);
    expect(result.signal).toBe("SIGKILL");
  });

  it("loses no output of a command that writes faster than it is read, and makes it wait", async () => {
    const child = spawnCommand("sh", ["-c", "head -c 5000000 /dev/zero; echo done >&2"]);
    await child.started;
    let stderr = "";
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
    // Nobody reads stdout for a while: the command must block, not run to its end.
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(stderr).toBe("");
    let bytes = 0;
    child.stdout.on("data", (chunk: Buffer) => (bytes += chunk.length));
    const [exit] = await Promise.all([child.exited, finished(child.stdout)]);
    expect(exit).toEqual({ code: 0, signal: null });
    expect(bytes).toBe(5_000_000);
    expect(stderr).toBe("done\n");
  });

  it("runs many commands at once, each with its own output", async () => {
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => runCommand("echo", [`n${i}`])));
    expect(results.map((r) => r.stdout)).toEqual(Array.from({ length: 20 }, (_, i) => `n${i}\n`));
  });
});
