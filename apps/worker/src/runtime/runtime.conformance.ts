import { existsSync } from "node:fs";
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { type AddressInfo, connect, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { resolveMemoryCgroup } from "./cgroup.js";
import { runCommand } from "./command.js";
import { ensureNodeDist } from "./node-dist.js";
import { cgroupsPath } from "./oci-runtime.js";
import { mountsUnder } from "./overlay.js";
import { ensureBaseRootfs } from "./rootfs.js";
import type { ContainerExit, ContainerHandle, ContainerRuntime, ContainerSpec } from "./types.js";

/** What the suite may expect of a runtime. */
export interface ConformanceOptions {
  /** Real isolation: own root filesystem (overlay), read-only mounts, enforced memory limit. */
  isolated: boolean;
  /** The runtime's state directory, checked for leftovers after the suite. */
  stateDir?: string;
}

interface Finished {
  stdout: string;
  stderr: string;
  exit: ContainerExit;
}

const CACHE_DIR = process.env.SKIFF_CACHE_DIR ?? "/root/.skiff/cache";
const NODE_MAJOR = 20;
const NODE_MOUNT = "/.skiff/node";
const NODE = `${NODE_MOUNT}/bin/node`;
const TEST_TIMEOUT_MS = 30_000;

/**
 * The behaviour every ContainerRuntime must have. Call it from a test file, once per runtime; the runtime is
 * skipped, with its reason in the suite name, when `available()` says it cannot run here.
 */
export async function describeRuntimeConformance(
  name: string,
  factory: () => ContainerRuntime,
  options: ConformanceOptions,
): Promise<void> {
  const runtime = factory();
  const availability = await runtime.available();
  const title = availability.ok ? `${name} runtime` : `${name} runtime (skipped: ${availability.reason})`;
  describe.skipIf(!availability.ok)(title, () => defineCases(runtime, factory, name, options));
}

function defineCases(
  runtime: ContainerRuntime,
  factory: () => ContainerRuntime,
  name: string,
  options: ConformanceOptions,
): void {
  let rootfs = "";
  let nodeDir = "";
  let scratch = "";
  const ids: string[] = [];
  const newId = (label: string) => {
    const id = `conf-${name}-${label}-${process.pid}-${ids.length}`;
    ids.push(id);
    return id;
  };
  const spec = (label: string, overrides: Partial<ContainerSpec>): ContainerSpec => ({
    id: newId(label),
    rootfs,
    command: ["/bin/true"],
    env: {},
    cwd: "/",
    mounts: [],
    cpu: 1,
    memoryMiB: 256,
    network: "none",
    ...overrides,
  });
  const nodeMount = () => ({ source: nodeDir, target: NODE_MOUNT, readonly: true });

  beforeAll(async () => {
    await runtime.cleanupStale();
    [rootfs, nodeDir] = await Promise.all([ensureBaseRootfs(CACHE_DIR), ensureNodeDist(CACHE_DIR, NODE_MAJOR)]);
    scratch = await mkdtemp(join(tmpdir(), `skiff-conf-${name}-`));
  }, 600_000);

  afterAll(async () => {
    await Promise.all(ids.map((id) => runtime.kill(id)));
    if (scratch) await rm(scratch, { recursive: true, force: true });
  });

  it(
    "streams stdout and stderr while the command runs",
    async () => {
      const handle = await runtime.start(
        spec("stream", { command: ["/bin/sh", "-c", "echo first; echo oops >&2; sleep 1; echo second"] }),
      );
      let exitedEarly = false;
      void handle.exited.then(() => (exitedEarly = true));
      const stdout = collect(handle.stdout);
      const stderr = collect(handle.stderr);
      const firstChunk = await new Promise<string>((resolve) =>
        handle.stdout.once("data", (chunk) => resolve(String(chunk))),
      );
      expect(firstChunk).toBe("first\n");
      expect(exitedEarly).toBe(false);
      await handle.exited;
      expect(await stdout).toContain("second\n");
      expect(await stderr).toBe("oops\n");
    },
    TEST_TIMEOUT_MS,
  );

  it(
    "feeds stdin to the command when asked",
    async () => {
      const handle = await runtime.start(
        spec("stdin", { command: ["/bin/sh", "-c", 'read line; echo "got $line"; cat'], stdin: true }),
      );
      const stdout = collect(handle.stdout);
      handle.stdin?.write("hello\n");
      handle.stdin?.end("rest\n");
      await handle.exited;
      expect(await stdout).toBe("got hello\nrest\n");
    },
    TEST_TIMEOUT_MS,
  );

  it.skipIf(!runtime.exec)(
    "runs a command beside the container's own, inside it",
    async () => {
      const handle = await runtime.start(
        spec("exec", { command: ["/bin/sh", "-c", "read line; cat /tmp/mark"], stdin: true }),
      );
      const stdout = collect(handle.stdout);
      const made = await runtime.exec!(handle.id, ["/bin/sh", "-c", "echo from-exec > /tmp/mark"]);
      expect(made, made.stderr).toMatchObject({ code: 0 });
      handle.stdin?.end("go\n");
      await handle.exited;
      expect(await stdout).toBe("from-exec\n");
      expect((await runtime.exec!(handle.id, ["/bin/true"])).code).not.toBe(0);
    },
    TEST_TIMEOUT_MS,
  );

  it(
    "reports the exit code",
    async () => {
      const { exit } = await run(runtime, spec("exit", { command: ["/bin/sh", "-c", "exit 7"] }));
      expect(exit).toEqual({ exitCode: 7, signal: null, oomKilled: false });
    },
    TEST_TIMEOUT_MS,
  );

  it(
    "passes env and cwd",
    async () => {
      const dir = await scratchDir(scratch, "cwd");
      await writeFile(join(dir, "marker.txt"), "here");
      const result = await run(
        runtime,
        spec("env", {
          command: ["/bin/sh", "-c", 'echo "$GREETING"; cat marker.txt'],
          env: { GREETING: "hello world" },
          cwd: "/data",
          mounts: [{ source: dir, target: "/data", readonly: false }],
        }),
      );
      expect(result.stdout).toBe("hello world\nhere");
      expect(result.exit.exitCode).toBe(0);
    },
    TEST_TIMEOUT_MS,
  );

  it.skipIf(!options.isolated)(
    "keeps a read-only bind mount read-only",
    async () => {
      const dir = await scratchDir(scratch, "ro");
      const result = await run(
        runtime,
        spec("ro", {
          command: ["/bin/sh", "-c", "test -d /ro && echo written > /ro/file"],
          mounts: [{ source: dir, target: "/ro", readonly: true }],
        }),
      );
      expect(result.exit.exitCode).not.toBe(0);
      expect(result.stderr).toMatch(/read-only/i);
      expect(existsSync(join(dir, "file"))).toBe(false);
    },
    TEST_TIMEOUT_MS,
  );

  it.skipIf(!options.isolated)(
    "keeps writes to / out of the base rootfs and other containers",
    async () => {
      const file = `/leak-${process.pid}`;
      const writer = await run(
        runtime,
        spec("write", { command: ["/bin/sh", "-c", `echo mine > ${file} && cat ${file}`] }),
      );
      expect(writer.stdout).toBe("mine\n");
      expect(existsSync(join(rootfs, file))).toBe(false);
      const reader = await run(runtime, spec("read", { command: ["/bin/sh", "-c", `test ! -e ${file}`] }));
      expect(reader.exit.exitCode).toBe(0);
    },
    TEST_TIMEOUT_MS,
  );

  it(
    "lets a node program connect to a host Unix socket in a bind-mounted directory",
    async () => {
      const dir = await scratchDir(scratch, "sock");
      const server = createServer((socket) => socket.on("data", (data) => socket.end(`pong:${data}`)));
      await new Promise<void>((resolve) => server.listen(join(dir, "worker.sock"), resolve));
      try {
        const script =
          "const s = require('net').connect(process.env.SKIFF_SOCKET, () => s.write('ping'));" +
          "s.on('data', (d) => process.stdout.write(String(d)));";
        const result = await run(
          runtime,
          spec("uds", {
            command: [NODE, "-e", script],
            env: { SKIFF_SOCKET: "/.skiff/io/worker.sock" },
            mounts: [nodeMount(), { source: dir, target: "/.skiff/io", readonly: false }],
          }),
        );
        expect(result).toMatchObject({ stdout: "pong:ping", exit: { exitCode: 0 } });
      } finally {
        server.close();
      }
    },
    TEST_TIMEOUT_MS,
  );

  it(
    "lets the host connect to a Unix socket a node program listens on in a bind-mounted directory",
    async () => {
      const dir = await scratchDir(scratch, "listen");
      // A web function's runner serves HTTP this way: it makes the socket, the worker's relay connects.
      const script =
        "const server = require('net').createServer((s) => s.on('data', (d) => { s.end('pong:' + d); server.close(); }));" +
        "server.listen(process.env.SKIFF_WEB_SOCKET);";
      const finished = run(
        runtime,
        spec("uds-listen", {
          command: [NODE, "-e", script],
          env: { SKIFF_WEB_SOCKET: "/.skiff/io/web.sock" },
          mounts: [nodeMount(), { source: dir, target: "/.skiff/io", readonly: false }],
        }),
      );
      let answer: string | undefined;
      for (let i = 0; answer === undefined && i < 200; i++) {
        answer = await new Promise<string | undefined>((resolve) => {
          const socket = connect(join(dir, "web.sock"), () => socket.write("ping"));
          let text = "";
          socket.on("data", (data) => {
            text += data;
          });
          socket.on("end", () => resolve(text));
          socket.on("error", () => setTimeout(() => resolve(undefined), 50));
        });
      }
      expect(answer).toBe("pong:ping");
      expect((await finished).exit).toMatchObject({ exitCode: 0 });
    },
    TEST_TIMEOUT_MS,
  );

  it.skipIf(!options.isolated)(
    "reaches the host network only when network is host",
    async () => {
      const server = createServer((socket) => socket.end("hello"));
      await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
      try {
        const { port } = server.address() as AddressInfo;
        const script =
          `const s = require('net').connect(${port}, '127.0.0.1');` +
          "s.on('data', (d) => process.stdout.write(String(d))); s.on('error', (e) => { console.log(e.code); });";
        const connect = (network: ContainerSpec["network"]) =>
          run(runtime, spec(`net-${network}`, { command: [NODE, "-e", script], network, mounts: [nodeMount()] }));
        const [host, none] = await Promise.all([connect("host"), connect("none")]);
        expect(host.stdout).toBe("hello");
        expect(none.stdout).toMatch(/ECONNREFUSED|ENETUNREACH/);
      } finally {
        server.close();
      }
    },
    TEST_TIMEOUT_MS,
  );

  it.skipIf(!options.isolated)(
    "private network: no access to the host, a default route out, NAT on the host",
    async () => {
      const server = createServer((socket) => socket.end("hello"));
      await new Promise<void>((resolve) => server.listen(0, "0.0.0.0", resolve));
      try {
        const { port } = server.address() as AddressInfo;
        const result = await run(
          runtime,
          spec("priv", { command: [NODE, "-e", probeScript(port)], network: "private", mounts: [nodeMount()] }),
        );
        const probe = JSON.parse(result.stdout) as Record<string, string>;
        expect(probe.addr).toMatch(/^10\.213\.\d+\.\d+$/);
        // Loopback is the container's own; the host's bridge address is dropped by SKIFF-INPUT.
        expect(probe.loopback).toBe("ECONNREFUSED");
        expect(probe.bridge).not.toBe("CONNECTED");
        // A default route exists (no internet here: the packet just goes out, unanswered).
        expect(probe.outside).not.toBe("ENETUNREACH");
        const nat = await runCommand("iptables", [
          "-w",
          "-t",
          "nat",
          "-C",
          "POSTROUTING",
          "-s",
          "10.213.0.0/16",
          "!",
          "-o",
          "skiff0",
          "-j",
          "MASQUERADE",
        ]);
        expect(nat.code).toBe(0);
      } finally {
        server.close();
      }
    },
    TEST_TIMEOUT_MS,
  );

  it.skipIf(!options.isolated)(
    "private network: concurrent containers get different addresses, released on exit and on kill",
    async () => {
      const script = "console.log(require('os').networkInterfaces().eth0.find((a) => a.family === 'IPv4').address);";
      const [a, b] = await Promise.all(
        ["a", "b"].map((label) =>
          run(
            runtime,
            spec(`priv-${label}`, { command: [NODE, "-e", script], network: "private", mounts: [nodeMount()] }),
          ),
        ),
      );
      const killed = await runtime.start(
        spec("priv-kill", {
          command: [NODE, "-e", `${script} setTimeout(() => {}, 60000);`],
          network: "private",
          mounts: [nodeMount()],
        }),
      );
      const c = await new Promise<string>((resolve) => killed.stdout.once("data", (d) => resolve(String(d))));
      await runtime.kill(killed.id);
      await killed.exited;
      const addresses = [a?.stdout, b?.stdout, c].map((text) => String(text).trim());
      expect(new Set(addresses).size).toBe(3);
      for (const address of addresses) {
        expect(address).toMatch(/^10\.213\.\d+\.\d+$/);
        const [, , high, low] = address.split(".").map(Number) as [number, number, number, number];
        const index = high * 256 + low;
        expect(existsSync(`/var/run/netns/skiff-${index}`)).toBe(false);
        expect(existsSync(`/sys/class/net/skv${index}`)).toBe(false);
        expect(existsSync(`/run/skiff/net/claims/${index}`)).toBe(false);
      }
    },
    TEST_TIMEOUT_MS,
  );

  it.skipIf(!options.isolated)(
    "private network: a container cannot reach another container",
    async () => {
      // The listener answers on its own address (so it is up), then waits for the prober.
      const listen =
        "const addr = require('os').networkInterfaces().eth0.find((a) => a.family === 'IPv4').address;" +
        "const server = require('net').createServer((s) => s.on('error', () => {}).end('hello')).listen(7070, '0.0.0.0', () => {" +
        `  const s = require('net').connect(7070, addr); s.on('data', () => console.log(addr)); s.on('error', (e) => console.log(e.code));` +
        "});" +
        "process.stdin.on('data', () => process.exit(0));";
      const listener = await runtime.start(
        spec("priv-listen", { command: [NODE, "-e", listen], network: "private", mounts: [nodeMount()], stdin: true }),
      );
      try {
        const address = (
          await new Promise<string>((resolve) => listener.stdout.once("data", (d) => resolve(String(d))))
        ).trim();
        expect(address).toMatch(/^10\.213\.\d+\.\d+$/);
        const probe = `
          const s = require("net").connect(7070, "${address}");
          const t = setTimeout(() => { console.log("TIMEOUT"); process.exit(0); }, 3000);
          s.on("connect", () => { clearTimeout(t); console.log("CONNECTED"); s.destroy(); });
          s.on("error", (e) => { clearTimeout(t); console.log(e.code); });`;
        const prober = await run(
          runtime,
          spec("priv-probe", { command: [NODE, "-e", probe], network: "private", mounts: [nodeMount()] }),
        );
        expect(prober.stdout.trim()).toMatch(/^(TIMEOUT|EHOSTUNREACH|ECONNREFUSED|ENETUNREACH)$/);
        // The listener still listens: the host reaches it.
        const fromHost = await new Promise<string>((resolve) => {
          const socket = connect(7070, address);
          socket.on("data", (data) => resolve(String(data)));
          socket.on("error", (error: NodeJS.ErrnoException) => resolve(String(error.code)));
        });
        expect(fromHost).toBe("hello");
      } finally {
        listener.stdin?.end("done\n");
        await runtime.kill(listener.id);
        await listener.exited;
      }
    },
    TEST_TIMEOUT_MS,
  );

  it(
    "kill() stops a sleeping container and resolves exited",
    async () => {
      const handle = await runtime.start(spec("kill", { command: ["/bin/sh", "-c", "echo ready; exec sleep 60"] }));
      await new Promise((resolve) => handle.stdout.once("data", resolve));
      const started = Date.now();
      await runtime.kill(handle.id);
      const exit = await handle.exited;
      expect(exit.signal).toBe("SIGKILL");
      expect(Date.now() - started).toBeLessThan(10_000);
      await runtime.kill(handle.id);
    },
    TEST_TIMEOUT_MS,
  );

  it(
    "kill() during or right after start() still stops the container",
    async () => {
      const during = spec("kill-during", { command: ["/bin/sleep", "60"] });
      const starting = runtime.start(during);
      await runtime.kill(during.id);
      const after = await runtime.start(spec("kill-after", { command: ["/bin/sleep", "60"] }));
      await runtime.kill(after.id);
      const exits = await Promise.all([(await starting).exited, after.exited]);
      expect(exits.map((exit) => exit.signal)).toEqual(["SIGKILL", "SIGKILL"]);
    },
    TEST_TIMEOUT_MS,
  );

  it.skipIf(!options.isolated)(
    "OOM-kills a program that allocates past its memory limit",
    async () => {
      const script = "const a = []; for (let i = 0; i < 64; i++) { a.push(Buffer.alloc(16 << 20, 1)); }";
      const result = await run(
        runtime,
        spec("oom", { command: [NODE, "-e", script], memoryMiB: 128, mounts: [nodeMount()] }),
      );
      expect(result.exit.oomKilled).toBe(true);
      expect(result.exit.exitCode).not.toBe(0);
    },
    TEST_TIMEOUT_MS,
  );

  it.skipIf(!options.isolated)(
    "cleanupStale() on a new instance removes containers left by an old one",
    async () => {
      const handle = await runtime.start(spec("stale", { command: ["/bin/sh", "-c", "echo ready; exec sleep 60"] }));
      await new Promise((resolve) => handle.stdout.once("data", resolve));
      await factory().cleanupStale();
      expect((await handle.exited).signal).toBe("SIGKILL");
      if (options.stateDir) expect(await mountsUnder(options.stateDir)).toEqual([]);
    },
    TEST_TIMEOUT_MS,
  );

  it(
    "runs 5 containers concurrently",
    async () => {
      const specs = Array.from({ length: 5 }, (_, i) =>
        spec(`many${i}`, { command: ["/bin/sh", "-c", 'sleep 0.2; echo "$N"'], env: { N: String(i) } }),
      );
      const results = await Promise.all(specs.map((s) => run(runtime, s)));
      expect(results.map((r) => r.stdout)).toEqual(["0\n", "1\n", "2\n", "3\n", "4\n"]);
      expect(results.every((r) => r.exit.exitCode === 0)).toBe(true);
    },
    TEST_TIMEOUT_MS,
  );

  it(
    "leaves no overlay mounts, state or cgroups behind",
    async () => {
      if (!options.stateDir) return;
      expect(await mountsUnder(options.stateDir)).toEqual([]);
      expect(await readdir(join(options.stateDir, "bundles")).catch(() => [])).toEqual([]);
      const mounts = await readFile("/proc/mounts", "utf8");
      expect(ids.filter((id) => mounts.includes(id))).toEqual([]);
      const cgroups = await Promise.all(ids.map((id) => resolveMemoryCgroup(cgroupsPath(id))));
      expect(cgroups.filter((cgroup) => existsSync(cgroup.dir)).map((cgroup) => cgroup.dir)).toEqual([]);
      const claimsDir = "/run/skiff/net/claims";
      const claims = await Promise.all(
        (await readdir(claimsDir).catch(() => [] as string[])).map((f) =>
          readFile(join(claimsDir, f), "utf8").catch(() => ""),
        ),
      );
      expect(claims.filter((claim) => claim.includes(JSON.stringify(options.stateDir)))).toEqual([]);
    },
    TEST_TIMEOUT_MS,
  );
  it.skipIf(!runtime.checkpoint)(
    "checkpoint and restore: memory and timers carry over into other containers, with their own mounts and network",
    async () => {
      const server = createServer((socket) => socket.end("hello"));
      await new Promise<void>((resolve) => server.listen(0, "0.0.0.0", resolve));
      const { port } = server.address() as AddressInfo;
      // Fills 80 MB, says so, then waits for a file in its mounted directory: after a restore the directory is
      // another container's, where the file is; then it probes the network it has now.
      const script = `
        const fs = require("fs");
        const big = new Float64Array(10_000_000).map((_, i) => i % 7);
        console.log("filled");
        const wait = setInterval(() => {
          if (!fs.existsSync("/mnt/go")) return;
          clearInterval(wait);
          let sum = 0; for (let i = 0; i < big.length; i++) sum += big[i];
          console.log("sum " + sum + " dir " + fs.readFileSync("/mnt/go", "utf8"));
          ${probeScript(port)}
        }, 5);`;
      const dirs = await Promise.all(["ck-a", "ck-b", "ck-c"].map((label) => scratchDir(scratch, label)));
      const image = await scratchDir(scratch, "ck-image");
      const containerSpec = (label: string, dir: string, restoreFrom?: string) =>
        spec(label, {
          command: [NODE, "-e", script],
          network: "private",
          mounts: [nodeMount(), { source: dir, target: "/mnt", readonly: false }],
          checkpointable: true,
          ...(restoreFrom ? { restoreFrom } : {}),
        });
      try {
        const first = await runtime.start(containerSpec("ck", dirs[0]!));
        const firstOut = collect(first.stdout);
        await new Promise<void>((resolve) => first.stdout.once("data", () => resolve()));
        await runtime.checkpoint!(first.id, image);
        await first.exited;
        expect(await firstOut).toBe("filled\n");
        const restored = await Promise.all(
          dirs.slice(1).map(async (dir, i) => {
            await writeFile(join(dir, "go"), `b${i}`);
            return run(runtime, containerSpec(`ck-r${i}`, dir, image));
          }),
        );
        for (const [i, result] of restored.entries()) {
          const [line, json] = result.stdout.trim().split("\n");
          expect(line).toBe(`sum 29999994 dir b${i}`);
          const probe = JSON.parse(json!) as Record<string, string>;
          expect(probe.addr).toMatch(/^10\.213\.\d+\.\d+$/);
          expect(probe.bridge).not.toBe("CONNECTED");
          expect(result.exit.exitCode).toBe(0);
        }
        // Each restored container had its own address.
        expect(new Set(restored.map((r) => JSON.parse(r.stdout.trim().split("\n")[1]!).addr)).size).toBe(2);
      } finally {
        server.close();
      }
    },
    60_000,
  );

  it.skipIf(!runtime.checkpoint)(
    "a restore from a damaged checkpoint fails the start or exits at once",
    async () => {
      const image = await scratchDir(scratch, "ck-bad");
      await writeFile(join(image, "checkpoint.img"), "not a checkpoint");
      const started = await runtime
        .start(spec("ck-bad", { command: ["/bin/true"], network: "private", checkpointable: true, restoreFrom: image }))
        .then(
          (handle) => finished(handle),
          (error: Error) => ({ error }),
        );
      if ("error" in started) expect(started.error.message).toMatch(/./);
      else expect(started.exit.exitCode).not.toBe(0);
    },
    TEST_TIMEOUT_MS,
  );
}

/** A node script that probes the network from a private container and prints what it found as JSON. */
function probeScript(port: number): string {
  return `
    const net = require("net");
    const eth0 = require("os").networkInterfaces().eth0 || [];
    const probe = (host, p) => new Promise((resolve) => {
      const s = net.connect({ host, port: p });
      const t = setTimeout(() => { s.destroy(); resolve("TIMEOUT"); }, 1500);
      s.on("connect", () => { clearTimeout(t); s.destroy(); resolve("CONNECTED"); });
      s.on("error", (e) => { clearTimeout(t); resolve(e.code); });
    });
    Promise.all([probe("127.0.0.1", ${port}), probe("10.213.0.1", ${port}), probe("192.0.2.1", 80)]).then(
      ([loopback, bridge, outside]) => {
        const addr = (eth0.find((a) => a.family === "IPv4") || {}).address;
        console.log(JSON.stringify({ addr, loopback, bridge, outside }));
      });`;
}

async function run(runtime: ContainerRuntime, spec: ContainerSpec): Promise<Finished> {
  return finished(await runtime.start(spec));
}

async function finished(handle: ContainerHandle): Promise<Finished> {
  const [stdout, stderr, exit] = await Promise.all([collect(handle.stdout), collect(handle.stderr), handle.exited]);
  return { stdout, stderr, exit };
}

function collect(stream: Readable): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = "";
    stream.setEncoding("utf8");
    stream.on("data", (chunk: string) => (text += chunk));
    stream.on("end", () => resolve(text));
    stream.on("error", reject);
  });
}

async function scratchDir(scratch: string, label: string): Promise<string> {
  return mkdtemp(join(scratch, `${label}-`));
}
