import { execFileSync, spawn, spawnSync } from "node:child_process";
import { createHash, randomUUID } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, readlinkSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CLI, e2eRuntime, ROOT, Stack } from "./stack.js";

const FILE = "e2e/fixtures/image.ts";

describe.skipIf(e2eRuntime() === "process")("images defined in code", () => {
  let stack: Stack;
  const nonce = randomUUID();
  beforeAll(async () => {
    stack = await Stack.start();
  });
  afterAll(async () => {
    await stack?.stop();
  });

  const run = (entry: string, env: Record<string, string> = {}) =>
    stack.run(["run", `${FILE}::${entry}`], { env: { SKIFF_TEST_NONCE: nonce, ...env }, timeoutMs: 300_000 });
  const steps = (stdout: string) =>
    stdout
      .split("\n")
      .map((line) => /image step (\d+)\/\d+ .*: (cached|building)$/.exec(line))
      .filter((match) => match !== null)
      .map((match) => `${match[1]} ${match[2]}`);

  it("builds apt, npm, env and workdir layers, reuses them, and rebuilds only a changed last step", async () => {
    const first = await run("probe");
    expect(first.code, first.stderr).toBe(0);
    expect(steps(first.stdout)).toEqual(["1", "2", "3", "4", "5", "6", "7"].map((n) => `${n} building`));
    for (const text of [
      "jq-1.6",
      '"vips": "8.',
      '"mode": "prod"',
      '"cwd": "/srv"',
      '"last": "one"',
      '"asset": "hello from an asset"',
    ]) {
      expect(first.stdout).toContain(text);
    }

    const again = await run("probe");
    expect(again.code, again.stderr).toBe(0);
    expect(steps(again.stdout)).toEqual(["1", "2", "3", "4", "5", "6", "7"].map((n) => `${n} cached`));

    const changed = await run("probe", { LAST_STEP: "two" });
    expect(changed.code, changed.stderr).toBe(0);
    expect(steps(changed.stdout)).toEqual([..."123456"].map((n) => `${n} cached`).concat("7 building"));
    expect(changed.stdout).toContain('"last": "two"');
    expect(first.stdout.replace(/\s+/g, "")).toContain('"model":{"weights":[1,2,3]}');
    // The first build runs apt and npm: 12 s on a quiet machine, past a minute on a busy one.
  }, 180_000);

  it("builds a Dockerfile, each instruction a layer, and refuses what it does not support by line", async () => {
    const result = await run("fromDocker");
    expect(result.code, result.stderr).toBe(0);
    expect(steps(result.stdout)).toHaveLength(7); // ENV WORKDIR COPY ADD RUN USER RUN
    const value = JSON.parse(result.stdout.slice(result.stdout.indexOf("{")));
    const model = readFileSync(join(ROOT, "e2e/fixtures/image-files/model.json"), "utf8").trim();
    expect(value).toEqual({
      greeting: `${nonce} from RUN`,
      model,
      copy: model,
      note: "hello from an asset",
      mode: "docker",
      other: "two words",
      cwd: "/app",
      uid: 1234,
      who: "skiffer",
    });
    const bad = await stack.run(["run", "e2e/fixtures/bad-dockerfile.ts"]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain("Dockerfile.bad:3: EXPOSE is not supported");
  });

  it("builds ahead of any call, with skiff image build and with image.build()", async () => {
    const fresh = { SKIFF_TEST_NONCE: randomUUID() };
    const cli = await stack.run(["image", "build", `${FILE}::probe`], { env: fresh, timeoutMs: 300_000 });
    expect(cli.code, cli.stderr).toBe(0);
    expect(steps(cli.stdout)[0]).toBe("1 building");
    expect(cli.stderr).toContain("built 1 image(s)");
    const sdk = await run("eager", { ...fresh, LAST_STEP: "eager" });
    expect(sdk.code, sdk.stderr).toBe(0);
    expect(steps(sdk.stdout)).toEqual([..."123456"].map((n) => `${n} cached`).concat("7 building"));
    const call = await run("probe", { ...fresh, LAST_STEP: "eager" });
    expect(steps(call.stdout)).toEqual([..."1234567"].map((n) => `${n} cached`));
    const broken = await stack.run(["image", "build", `${FILE}::broken`], { env: fresh });
    expect(broken.code).toBe(1);
    expect(broken.stderr).toContain("exit code 3");
  });

  it("exports an image as an OCI layout that umoci unpacks, with the Node build and the image's config", async () => {
    const out = join(mkdtempSync(join(tmpdir(), "skiff-export-")), "layout");
    const result = await stack.run(["image", "export", `${FILE}::fromDocker`, out], {
      env: { SKIFF_TEST_NONCE: nonce },
      timeoutMs: 300_000,
    });
    expect(result.code, result.stderr).toBe(0);
    const unpacked = join(out, "..", "rootfs");
    execFileSync("umoci", ["raw", "unpack", "--image", `${out}:latest`, unpacked]);
    expect(readFileSync(join(unpacked, "app", "greeting"), "utf8").trim()).toBe(`${nonce} from RUN`);
    expect(existsSync(join(unpacked, ".skiff", "node", "bin", "node"))).toBe(true);
    const blob = (digest: string) => JSON.parse(readFileSync(join(out, "blobs", ...digest.split(":")), "utf8"));
    const manifest = blob(JSON.parse(readFileSync(join(out, "index.json"), "utf8")).manifests[0].digest);
    const { config } = blob(manifest.config.digest);
    expect(config.WorkingDir).toBe("/app");
    expect(config.User).toBe("1234:1234");
    expect(config.Env).toEqual(
      expect.arrayContaining(["APP_MODE=docker", expect.stringMatching(/^PATH=\/\.skiff\/node\/bin:/)]),
    );
    rmSync(join(out, ".."), { recursive: true, force: true });
  });

  it("fetches the layers another worker built instead of building them again", async () => {
    const fresh = { SKIFF_TEST_NONCE: randomUUID() };
    const first = await run("shared", fresh);
    expect(first.code, first.stderr).toBe(0);
    expect(steps(first.stdout)).toEqual(["1 building", "2 building"]);
    // A worker with a cache of its own (sharing only the base and the Node build) takes over; the first
    // publishes its layers before it stops.
    await stack.kill("worker", "SIGTERM");
    const cache = mkdtempSync(join(tmpdir(), "skiff-cache-"));
    const real = process.env.SKIFF_CACHE_DIR ?? join(process.env.HOME ?? "/root", ".skiff", "cache");
    for (const dir of ["rootfs", "node"]) symlinkSync(join(real, dir), join(cache, dir));
    stack.workerEnv = { ...stack.workerEnv, SKIFF_CACHE_DIR: cache };
    await stack.startWorker();
    const second = await run("shared", fresh);
    expect(second.code, second.stderr).toBe(0);
    const fetched = second.stdout.split("\n").filter((line) => /image step \d\/2 .*: fetching$/.test(line));
    expect(fetched).toHaveLength(2);
    expect(second.stdout).toContain(`"nonce": "${fresh.SKIFF_TEST_NONCE}"`);
    expect(second.stdout).toContain('"gone": true');
  });

  it("opens a shell in a function's image, and in the image before a failing step", async () => {
    const fresh = { SKIFF_TEST_NONCE: randomUUID() };
    const shell = await stack.run(["shell", "--image", `${FILE}::shared`], {
      env: fresh,
      input: "cat /etc/shared-nonce\nls /opt\nexit 7\n",
      timeoutMs: 120_000,
    });
    expect(shell.code, shell.stderr).toBe(7);
    expect(shell.stdout).toContain(fresh.SKIFF_TEST_NONCE);
    expect(shell.stdout).not.toContain("gone");
    const command = await stack.run(["shell", "--image", `${FILE}::broken`, "cat", "/etc/os-release"], {
      env: fresh,
      input: "",
    });
    expect(command.code, command.stderr).toBe(0);
    expect(command.stderr).toContain("the shell opens in the image before step 1");
    expect(command.stdout).toContain("Debian GNU/Linux 12");
  });

  it("gives an interactive shell a terminal of the caller's size, and follows resizes", async () => {
    // util-linux script(1) gives the CLI a terminal here, as a user's would be; exec makes the CLI its child.
    const cli = `stty rows 30 cols 90; exec node ${CLI} shell --image ${FILE}::shared`;
    const child = spawn("script", ["-qfec", cli, "/dev/null"], {
      cwd: ROOT,
      env: { ...stack.env, TERM: "xterm", SKIFF_TEST_NONCE: randomUUID() },
      stdio: ["pipe", "pipe", "pipe"],
    });
    let output = "";
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
      output += chunk;
    });
    const exited = new Promise<number | null>((resolve) => child.once("exit", resolve));
    const waitFor = async (text: string) => {
      for (let i = 0; i < 1200 && !output.includes(text); i++) await sleep(100);
      expect(output, `waiting for ${JSON.stringify(text)}`).toContain(text);
    };
    try {
      child.stdin.write('tty; echo "size=$(stty size) term=$TERM"\n');
      await waitFor("size=30 90 term=xterm");
      expect(output).toContain("/dev/pts/");
      // The terminal of the CLI changes size, as when a user resizes the window: the container's follows.
      const cliPid = execFileSync("pgrep", ["-P", String(child.pid)])
        .toString()
        .trim()
        .split("\n")[0]!;
      execFileSync("stty", ["-F", readlinkSync(`/proc/${cliPid}/fd/1`), "rows", "50", "cols", "120"]);
      child.stdin.write(
        'for i in $(seq 100); do [ "$(stty size)" = "50 120" ] && break; sleep 0.1; done; echo "size=$(stty size)"; exit 4\n',
      );
      await waitFor("size=50 120");
      expect(await exited).toBe(4);
    } finally {
      child.kill("SIGKILL");
    }
  }, 180_000);

  it("runs a step with a build secret that stays out of the layer, the log and the function", async () => {
    const env = { SKIFF_TEST_NONCE: randomUUID() };
    const token = `tok-${randomUUID()}`;
    const missing = await stack.run(["run", "e2e/fixtures/build-secret.ts"], { env });
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('runs with the secret "build-token", which is not in environment "main"');
    expect((await stack.run(["secret", "create", "build-token", `BUILD_TOKEN=${token}`])).code).toBe(0);
    const built = await stack.run(["run", "e2e/fixtures/build-secret.ts"], { env, timeoutMs: 300_000 });
    expect(built.code, built.stderr).toBe(0);
    const sha = createHash("sha256").update(token).digest("hex").slice(0, 16);
    expect(built.stdout).toContain(`"sha": "${sha}"`);
    expect(built.stdout).toContain('"inEnv": false');
    expect(built.stdout).toContain("building with [secret]");
    expect(built.stdout + built.stderr).not.toContain(token);
    // No file of any cached layer holds the value.
    const layers = join(stack.env.SKIFF_CACHE_DIR!, "layers");
    expect(spawnSync("grep", ["-rlF", token, layers]).stdout.toString()).toBe("");
  }, 400_000);

  it("fails a call whose step fails, with the step, its exit code and the end of its output", async () => {
    const result = await run("broken");
    expect(result.code).toBe(1);
    expect(result.stderr).toContain("image step 1/1");
    expect(result.stderr).toContain("exit code 3");
    expect(result.stderr).toContain("about to fail");
    expect(result.stderr).toContain("skiff shell --image FILE::broken");
  });

  it("runs a file that imports, at its top, a package only its image installs", async () => {
    const result = await stack.run(["run", "e2e/fixtures/image-only-import.ts"], { timeoutMs: 300_000 });
    expect(result.code, result.stderr).toBe(0);
    expect(result.results).toEqual([[[0, 1], [2, 3], [4]]]);
  }, 400_000);

  it("names a package that is in neither the bundle nor the image, and the fix", async () => {
    const result = await run("missing");
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('npmInstall("left-pad-nowhere")');
  });
});
