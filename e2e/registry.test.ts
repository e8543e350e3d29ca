import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { e2eRuntime, hasCommand, Stack } from "./stack.js";

const FILE = "e2e/fixtures/registry.ts";
const CACHE = process.env.SKIFF_CACHE_DIR ?? join(process.env.HOME ?? "/root", ".skiff", "cache");
const usable =
  e2eRuntime() !== "process" && ["docker-registry", "htpasswd", "skopeo", "umoci"].every((cmd) => hasCommand(cmd));

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const server = createServer().listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** A local registry that wants a login, holding an image the test makes from Skiff's Debian base. */
async function localRegistry(dir: string) {
  const port = await freePort();
  writeFileSync(join(dir, "htpasswd"), execFileSync("htpasswd", ["-Bbn", "skiff", "s3cret"]));
  writeFileSync(
    join(dir, "config.yml"),
    `version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: ${dir}/data\nhttp:\n  addr: 127.0.0.1:${port}\nauth:\n  htpasswd:\n    realm: skiff-test\n    path: ${dir}/htpasswd\n`,
  );
  const registry: ChildProcess = spawn("docker-registry", ["serve", join(dir, "config.yml")], { stdio: "ignore" });
  for (let i = 0; i < 50; i++) {
    const up = await fetch(`http://127.0.0.1:${port}/v2/`).then(
      () => true,
      () => false,
    );
    if (up) break;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  const ref = `127.0.0.1:${port}/team/base:${randomUUID().slice(0, 8)}`;
  const run = (cmd: string, args: string[]) => execFileSync(cmd, args, { stdio: "pipe" });
  run("umoci", ["init", "--layout", join(dir, "oci")]);
  run("umoci", ["new", "--image", `${join(dir, "oci")}:base`]);
  run("umoci", ["unpack", "--image", `${join(dir, "oci")}:base`, join(dir, "bundle")]);
  run("cp", ["-a", `${join(CACHE, "rootfs", "bookworm-minbase")}/.`, join(dir, "bundle", "rootfs")]);
  writeFileSync(join(dir, "bundle", "rootfs", "etc", "skiff-registry-marker"), "pushed by the test\n");
  run("umoci", ["repack", "--image", `${join(dir, "oci")}:base`, join(dir, "bundle")]);
  run("skopeo", [
    "copy",
    "--dest-creds",
    "skiff:s3cret",
    "--dest-tls-verify=false",
    `oci:${join(dir, "oci")}:base`,
    `docker://${ref}`,
  ]);
  const authFile = join(dir, "auth.json");
  run("skopeo", [
    "login",
    "--authfile",
    authFile,
    "--tls-verify=false",
    "-u",
    "skiff",
    "-p",
    "s3cret",
    ref.split("/")[0]!,
  ]);
  return { ref, authFile, stop: () => registry.kill() };
}

describe.skipIf(!usable)("images from a registry", () => {
  let dir: string;
  let registry: Awaited<ReturnType<typeof localRegistry>>;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "skiff-registry-"));
    registry = await localRegistry(dir);
  }, 120_000);
  afterAll(() => {
    registry?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const run = (stack: Stack) =>
    stack.run(["run", `${FILE}::marker`], { env: { SKIFF_TEST_REGISTRY_REF: registry.ref }, timeoutMs: 240_000 });

  it("says how to log in when the worker has no credentials", async () => {
    const stack = await Stack.start({ workerEnv: { REGISTRY_AUTH_FILE: join(dir, "none.json") } });
    try {
      const result = await run(stack);
      expect(result.code).toBe(1);
      expect(result.stderr).toContain(`pulling ${registry.ref} failed; give the image a secret with REGISTRY_USERNAME`);
    } finally {
      await stack.stop();
    }
  });

  it("pulls with the login in a Skiff secret, and names the keys such a secret needs", async () => {
    // A tag of its own, so that no worker has it cached from another test.
    const ref = `${registry.ref.slice(0, registry.ref.lastIndexOf(":"))}:${randomUUID().slice(0, 8)}`;
    execFileSync("skopeo", [
      "copy",
      ...["--src-creds", "skiff:s3cret", "--dest-creds", "skiff:s3cret"],
      ...["--src-tls-verify=false", "--dest-tls-verify=false"],
      `docker://${registry.ref}`,
      `docker://${ref}`,
    ]);
    const stack = await Stack.start({ workerEnv: { REGISTRY_AUTH_FILE: join(dir, "none.json") } });
    const env = { SKIFF_TEST_REGISTRY_REF: ref, SKIFF_TEST_REGISTRY_SECRET: "reg" };
    try {
      expect((await stack.run(["secret", "create", "reg", "REGISTRY_USERNAME=skiff"])).code).toBe(0);
      const half = await stack.run(["run", `${FILE}::marker`], { env });
      expect(half.code).toBe(1);
      expect(half.stderr).toMatch(
        /the registry secret "reg" in environment "main" needs .* \(missing: REGISTRY_PASSWORD\)/,
      );
      const login = ["REGISTRY_USERNAME=skiff", "REGISTRY_PASSWORD=s3cret", "--force"];
      expect((await stack.run(["secret", "create", "reg", ...login])).code).toBe(0);
      const result = await stack.run(["run", `${FILE}::marker`], { env, timeoutMs: 240_000 });
      expect(result.code, result.stderr).toBe(0);
      expect(result.stdout).toContain(`image base ${ref}: pulling`);
      expect(result.stdout).toContain('"marker": "pushed by the test"');
      expect(result.stdout + result.stderr).not.toContain("s3cret");
    } finally {
      await stack.stop();
    }
  });

  it("pulls with the worker's login and builds on top", async () => {
    const stack = await Stack.start({ workerEnv: { REGISTRY_AUTH_FILE: registry.authFile } });
    try {
      const result = await run(stack);
      expect(result.code, result.stderr).toBe(0);
      expect(result.stdout).toContain(`image base ${registry.ref}: pulling`);
      expect(result.stdout).toContain('"marker": "pushed by the test"');
      expect(result.stdout).toContain('"copied": "pushed by the test"');
    } finally {
      await stack.stop();
    }
  });
});
