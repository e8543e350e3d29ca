import { createHash } from "node:crypto";
import { readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { PutObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { S3_TEST_CREDENTIALS, type S3TestServer, startS3TestServer } from "@skiff/blob/s3-test-server";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fuseUnavailable } from "../apps/worker/src/volumes/volume-test-kit.js";
import { bigPieces } from "./fixtures/big-pieces.js";
import { e2eRuntime, hasCommand, Stack } from "./stack.js";

const FIXTURE = "e2e/fixtures/volume-mounts.ts";
const unavailable = await fuseUnavailable();
const runtimes = (["gvisor", "runc"] as const).filter((r) => hasCommand(r === "gvisor" ? "runsc" : "runc"));

type Read = { version: number; files: Record<string, string | null>; listed: string[]; write: string };

/**
 * Volumes and buckets mounted into functions' containers, through the real CLI, server, worker, rclone and
 * runtime: commit and reload across containers, read-only mounts, a commit at a clean exit, concurrent
 * committers, deletes, rollback, and an S3 bucket mount against a local S3 server.
 */
describe.skipIf(unavailable || e2eRuntime() === "process").each(runtimes)("volume mounts on %s", (runtime) => {
  let stack: Stack;
  let s3: S3TestServer;
  const step = async (name: string) => {
    const run = await stack.run(["run", FIXTURE, "--step", name], {
      timeoutMs: 240_000,
      env: { E2E_BUCKET_ENDPOINT: s3.endpoint },
    });
    expect(run.code, `${name}\n${run.stdout}\n${run.stderr}`).toBe(0);
    return run.results[0] as Record<string, unknown>;
  };
  const skiff = async (args: string[]) => {
    const result = await stack.run(args, { timeoutMs: 120_000 });
    expect(result.code, `skiff ${args.join(" ")}\n${result.stderr}`).toBe(0);
    return result.stdout;
  };

  beforeAll(async () => {
    s3 = await startS3TestServer("e2e-bucket");
    // A quota the 120 MiB file fits in, and a second one of 100 MiB does not.
    stack = await Stack.start({ runtime, serverEnv: { SKIFF_VOLUME_QUOTA: "200MiB" } });
    // Every step runs the whole app, whose bucket function needs its secret at deploy.
    await skiff([
      "secret",
      "create",
      "e2e-s3",
      `AWS_ACCESS_KEY_ID=${S3_TEST_CREDENTIALS.accessKeyId}`,
      `AWS_SECRET_ACCESS_KEY=${S3_TEST_CREDENTIALS.secretAccessKey}`,
    ]);
  }, 180_000);

  afterAll(async () => {
    await stack?.stop();
    await s3?.close();
  });

  it("a writer's commit is seen by a read-only reader in another container, which cannot write", async () => {
    const { made, read } = (await step("write")) as { made: { version: number }; read: Read };
    expect(made.version).toBeGreaterThan(1);
    expect(read.files).toEqual({ "weights.bin": "v1 weights", "conf/a.json": "{}" });
    expect(read.version).toBe(made.version);
    expect(read.listed).toEqual(["conf", "weights.bin"]);
    expect(read.write).toBe("EROFS");
    expect(await skiff(["volume", "get", "e2e-models", "weights.bin", "-"])).toBe("v1 weights");
  }, 300_000);

  it("commits at a clean exit without a commit() call", async () => {
    await step("exit-commit");
    expect(await skiff(["volume", "get", "e2e-models", "at-exit.txt", "-"])).toBe("committed at exit");
  }, 300_000);

  it("merges concurrent commits to different files; the same file keeps one whole write", async () => {
    const { read } = (await step("concurrent")) as { read: Read };
    expect(read.files["diff/a.txt"]).toBe("a");
    expect(read.files["diff/b.txt"]).toBe("b");
    expect(["first", "second"]).toContain(read.files["same.txt"]);
    // The earlier files are all still there: no commit took another's away.
    expect(read.listed).toEqual(expect.arrayContaining(["at-exit.txt", "conf", "diff", "same.txt", "weights.bin"]));
  }, 300_000);

  /** The volume's version before the delete below, for the rollback at the end. */
  let beforeDelete: number;

  it("propagates a delete", async () => {
    beforeDelete = Number((await skiff(["volume", "history", "e2e-models"])).match(/^v?(\d+)/m)?.[1]);
    await step("delete");
    expect((await step("read")) as unknown as Read).toMatchObject({ files: { "weights.bin": "v1 weights" } });
    const listed = await skiff(["volume", "ls", "e2e-models"]);
    expect(listed).not.toMatch(/conf\//);
  }, 300_000);

  it("keeps the last whole version when the worker is killed during a commit", async () => {
    const mib = 120;
    let killed: Promise<void> | undefined;
    const run = await stack.run(["run", FIXTURE, "--step", "big"], {
      timeoutMs: 240_000,
      env: { E2E_BUCKET_ENDPOINT: s3.endpoint, E2E_BIG_MIB: String(mib) },
      onLine: (line) => {
        if (!line.includes("COMMITTING") || killed) return;
        killed = (async () => {
          await new Promise((resolve) => setTimeout(resolve, 300));
          await stack.kill("worker");
          await stack.startWorker();
        })();
      },
    });
    await killed;
    expect(killed, run.stderr).toBeDefined();
    // The input ran again on the new worker (a lost worker is the platform's failure, not the function's).
    expect(run.code, run.stderr).toBe(0);
    const expected = createHash("sha256");
    for (const piece of bigPieces(mib)) expected.update(piece);
    const local = join(stack.home, "big.bin");
    await skiff(["volume", "get", "e2e-models", "big.bin", local]);
    expect(createHash("sha256").update(readFileSync(local)).digest("hex")).toBe(expected.digest("hex"));
    rmSync(local);
    // Every version has the whole file or none of it: never a torn one.
    const versions = [...(await skiff(["volume", "history", "e2e-models"])).matchAll(/^v(\d+)/gm)].map((m) => m[1]!);
    for (const version of versions) {
      const listed = await stack.run(["volume", "ls", "e2e-models", "big.bin", "--version", version]);
      if (listed.code !== 0) continue;
      expect(listed.stdout, `version ${version}`).toContain(` ${mib} MiB `);
    }
    // The new worker removed the mounts the killed one left.
    const mounts = readFileSync("/proc/self/mountinfo", "utf8");
    expect(mounts).not.toContain(join(stack.home, "worker", "mounts"));
  }, 300_000);

  // Where the runtime matters (the mount itself, gVisor's file handles, EROFS, the commit at a clean exit, a
  // worker killed under its containers), a case runs on each runtime; what the server, rclone and the CLI
  // decide alone (the quota, a delete refused while mounted, a bucket mounted through S3, a rollback) runs on
  // the first runtime only: gVisor, where runsc is installed.
  describe.runIf(runtime === runtimes[0])("where the runtime has no part", () => {
    it("fails a commit past the workspace's quota clearly, and leaves the volume at its last version", async () => {
      const before = await skiff(["volume", "history", "e2e-models"]);
      const run = await stack.run(["run", FIXTURE, "--step", "quota"], {
        timeoutMs: 240_000,
        env: { E2E_BUCKET_ENDPOINT: s3.endpoint, E2E_BIG_MIB: "100" },
      });
      expect(run.code, run.stderr).toBe(0);
      expect(JSON.stringify(run.results[0])).toMatch(
        /over their quota of 200 MiB: nothing was changed .*SKIFF_VOLUME_QUOTA/,
      );
      expect(await skiff(["volume", "history", "e2e-models"])).toBe(before);
      expect(await skiff(["volume", "ls", "e2e-models", "big.bin"])).toContain(" 120 MiB ");
    }, 300_000);

    it("refuses to delete a volume a running container mounts, unless forced", async () => {
      let attempts: Promise<[string, string]> | undefined;
      const held = await stack.run(["run", FIXTURE, "--step", "hold"], {
        timeoutMs: 120_000,
        onLine: (line) => {
          if (!line.includes("HOLDING") || attempts) return;
          attempts = (async () => {
            const refused = await stack.run(["volume", "delete", "e2e-held"]);
            expect(refused.code).toBe(1);
            const forced = await stack.run(["volume", "delete", "e2e-held", "--force"]);
            return [refused.stderr, `${forced.code} ${forced.stdout}${forced.stderr}`];
          })();
        },
      });
      expect(attempts, held.stderr).toBeDefined();
      const [refused, forced] = await attempts!;
      expect(refused).toMatch(/volume "e2e-held" is mounted by running containers \(ct-.*--force/);
      expect(forced).toMatch(/^0 .*deleted volume e2e-held/s);
      expect((await stack.run(["volume", "ls", "e2e-held"])).code).toBe(1);
    }, 300_000);

    it("mounts an S3 bucket under a key prefix, reading what is there and writing through", async () => {
      const client = new S3Client({
        endpoint: s3.endpoint,
        region: "us-east-1",
        forcePathStyle: true,
        credentials: S3_TEST_CREDENTIALS,
      });
      await client.send(new PutObjectCommand({ Bucket: "e2e-bucket", Key: "train/seeded.txt", Body: "seeded" }));
      client.destroy();
      const result = (await step("bucket")) as { listed: string[]; seeded: string };
      expect(result.seeded).toBe("seeded");
      expect(result.listed).toEqual(["from-fn.txt", "seeded.txt"]);
      const keys = (await s3.objects("train/")).map((o) => o.key).sort();
      expect(keys).toEqual(["train/from-fn.txt", "train/seeded.txt"]);
    }, 300_000);

    it("brings the files the delete above took back with a rollback", async () => {
      await skiff(["volume", "rollback", "e2e-models", String(beforeDelete)]);
      expect(await skiff(["volume", "ls", "e2e-models"])).toMatch(/conf\//);
    }, 300_000);
  });
});
