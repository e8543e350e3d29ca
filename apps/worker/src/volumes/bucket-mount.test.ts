import { mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PutObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { loadS3rver, S3_TEST_CREDENTIALS, type S3TestServer, startS3TestServer } from "@skiff/blob/s3-test-server";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { GvisorRuntime } from "../runtime/gvisor.js";
import { ensureBaseRootfs } from "../runtime/rootfs.js";
import { RuncRuntime } from "../runtime/runc.js";
import type { ContainerRuntime } from "../runtime/types.js";
import { BucketMount } from "./bucket-mount.js";
import { isFuseMounted } from "./rclone-mount.js";
import { finish, fuseUnavailable } from "./volume-test-kit.js";

const CACHE_DIR = process.env.SKIFF_CACHE_DIR ?? "/root/.skiff/cache";
const unavailable = (await fuseUnavailable()) ?? ((await loadS3rver()) ? undefined : "s3rver cannot be loaded");

describe.skipIf(unavailable)(`bucket mounts${unavailable ? ` (skipped: ${unavailable})` : ""}`, () => {
  let s3: S3TestServer;
  let client: S3Client;
  let root = "";
  const mounts: BucketMount[] = [];
  let made = 0;
  const mount = async (options: { readOnly: boolean; keyPrefix?: string }) => {
    const bucket = await BucketMount.mount({
      endpoint: s3.endpoint,
      bucket: s3.bucket,
      credentials: S3_TEST_CREDENTIALS,
      dir: join(root, `b${made++}`),
      ...options,
    });
    mounts.push(bucket);
    return bucket;
  };

  beforeAll(async () => {
    s3 = await startS3TestServer("datasets");
    client = new S3Client({
      endpoint: s3.endpoint,
      region: "us-east-1",
      forcePathStyle: true,
      credentials: S3_TEST_CREDENTIALS,
    });
    root = await mkdtemp(join(tmpdir(), "skiff-bucket-"));
    for (const [key, body] of Object.entries({
      "train/a.csv": "1,2\n",
      "train/sub/b.csv": "3,4\n",
      "other.txt": "x",
    })) {
      await client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: key, Body: body }));
    }
  });
  afterEach(async () => {
    await Promise.all(mounts.splice(0).map((bucket) => bucket.close({ flush: false })));
  });
  afterAll(async () => {
    client?.destroy();
    await s3?.close();
    if (root) await rm(root, { recursive: true, force: true });
    await rm(`/run/skiff-test/bucket-${process.pid}`, { recursive: true, force: true });
  });

  it("mounts a key prefix read-only: lists and reads, refuses writes", async () => {
    const bucket = await mount({ readOnly: true, keyPrefix: "train/" });
    expect((await readdir(bucket.hostPath)).sort()).toEqual(["a.csv", "sub"]);
    expect(await readFile(join(bucket.hostPath, "sub", "b.csv"), "utf8")).toBe("3,4\n");
    await expect(writeFile(join(bucket.hostPath, "new.csv"), "no")).rejects.toMatchObject({ code: "EROFS" });
  });

  it("fails the mount, saying why, for refused credentials, a missing bucket and an endpoint that is down", async () => {
    const attempt = (options: Partial<Parameters<typeof BucketMount.mount>[0]>) =>
      BucketMount.mount({
        endpoint: s3.endpoint,
        bucket: s3.bucket,
        credentials: S3_TEST_CREDENTIALS,
        dir: join(root, `b${made++}`),
        readOnly: true,
        ...options,
      });
    await expect(attempt({ credentials: { accessKeyId: "WRONG", secretAccessKey: "WRONG" } })).rejects.toThrow(
      /bucket "datasets" at http:\/\/127\.0\.0\.1:\d+ refused the credentials of its secret \(InvalidAccessKeyId\)/,
    );
    await expect(attempt({ bucket: "no-such-bucket" })).rejects.toThrow(/"no-such-bucket" at .* does not exist/);
    await expect(attempt({ endpoint: "http://127.0.0.1:9" })).rejects.toThrow(/could not be listed: ECONNREFUSED/);
  });

  it("keeps credentials out of rclone's command line and in a file only root can read", async () => {
    const bucket = await mount({ readOnly: true });
    const commandLine = await readFile(`/proc/${bucket.pid}/cmdline`, "utf8");
    expect(commandLine).toContain("mount");
    expect(commandLine).not.toContain(S3_TEST_CREDENTIALS.secretAccessKey);
    const config = join(root, `b${made - 1}`, "rclone.conf");
    expect(await readFile(config, "utf8")).toContain(`secret_access_key = ${S3_TEST_CREDENTIALS.secretAccessKey}`);
    expect((await stat(config)).mode & 0o777).toBe(0o600);
  });

  it("writes through to the bucket, under the prefix, and leaves nothing mounted after close", async () => {
    const bucket = await mount({ readOnly: false, keyPrefix: "train" });
    await writeFile(join(bucket.hostPath, "written.csv"), "5,6\n");
    await rm(join(bucket.hostPath, "a.csv"));
    await bucket.flush();
    const keys = (await s3.objects()).map((object) => object.key).sort();
    expect(keys).toEqual(["other.txt", "train/sub/b.csv", "train/written.csv"]);
    const path = bucket.hostPath;
    await bucket.close();
    expect(await isFuseMounted(path)).toBe(false);
  });

  for (const [name, factory] of [
    ["runc", () => new RuncRuntime({ stateDir: `/run/skiff-test/bucket-${process.pid}/runc` })],
    ["gvisor", () => new GvisorRuntime({ stateDir: `/run/skiff-test/bucket-${process.pid}/gvisor` })],
  ] as const) {
    it(`reads and writes the bucket from a ${name} container`, async () => {
      const runtime: ContainerRuntime = factory();
      const availability = await runtime.available();
      if (!availability.ok) throw new Error(availability.reason);
      await runtime.cleanupStale();
      const rootfs = await ensureBaseRootfs(CACHE_DIR);
      const bucket = await mount({ readOnly: false, keyPrefix: "train/sub" });
      const id = `bucket-${name}-${process.pid}`;
      try {
        const result = await finish(
          await runtime.start({
            id,
            rootfs,
            // A shell glob, not ls: this runsc refuses the statx flags Debian's coreutils pass, on every file system.
            command: ["/bin/sh", "-c", `cat /data/b.csv && echo from-${name} > /data/${name}.txt && echo /data/*`],
            env: {},
            cwd: "/",
            mounts: [{ source: bucket.hostPath, target: "/data", readonly: false }],
            cpu: 1,
            memoryMiB: 256,
            network: "none",
          }),
        );
        expect(result.exit.exitCode, result.stderr).toBe(0);
        const [content, listing] = result.stdout.split("\n");
        expect(content).toBe("3,4");
        expect(listing?.split(" ")).toEqual(expect.arrayContaining(["/data/b.csv", `/data/${name}.txt`]));
        await bucket.close();
        const keys = (await s3.objects("train/sub/")).map((object) => object.key).sort();
        expect(keys).toContain(`train/sub/${name}.txt`);
      } finally {
        await runtime.kill(id);
        await runtime.close?.();
      }
    }, 60_000);
  }
});
