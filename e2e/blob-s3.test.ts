import { existsSync } from "node:fs";
import { join } from "node:path";
import { loadS3rver, S3_TEST_CREDENTIALS, type S3TestServer, startS3TestServer } from "@skiff/blob/s3-test-server";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Stack } from "./stack.js";

const MiB = 1024 * 1024;
const canRun = (await loadS3rver()) !== undefined;
if (!canRun) console.warn("s3rver cannot be loaded (run `npm ci`): the S3 blob store e2e test is skipped");

/** A server whose SKIFF_BLOB_URL names a bucket: payloads too large to travel inline go through it. */
describe.skipIf(!canRun)("blobs in an S3 bucket", () => {
  let s3: S3TestServer;
  let stack: Stack;
  beforeAll(async () => {
    s3 = await startS3TestServer("skiff-e2e");
    stack = await Stack.start({
      serverEnv: {
        SKIFF_BLOB_URL: `s3://${s3.bucket}/install-1?endpoint=${s3.endpoint}`,
        AWS_ACCESS_KEY_ID: S3_TEST_CREDENTIALS.accessKeyId,
        AWS_SECRET_ACCESS_KEY: S3_TEST_CREDENTIALS.secretAccessKey,
      },
    });
  });
  afterAll(async () => {
    await stack?.stop();
    await s3?.close();
  });

  it("round-trips a 3 MiB argument and result through the bucket, under the install's prefix", async () => {
    const result = await stack.run(["run", "e2e/fixtures/payloads.ts::roundTrip", "--mib", "3"], {
      timeoutMs: 240_000,
    });
    if (result.code !== 0) throw new Error(`exit ${result.code}\n${result.stdout}\n${result.stderr}\n${stack.logs()}`);
    expect(result.results).toEqual([
      { argBytes: 3 * MiB, argIntact: true, resultBytes: 3 * MiB + 3, resultIntact: true },
    ]);
    const objects = await s3.objects();
    expect(objects.every(({ key }) => /^install-1\/blobs\/([0-9a-f]{2})\/\1[0-9a-f]{62}$/.test(key))).toBe(true);
    // The argument and the result, each a little over 3 MiB once encoded; the app's code is a blob too.
    expect(objects.filter(({ size }) => size > 3 * MiB).length).toBe(2);
    expect(existsSync(join(stack.home, "blobs"))).toBe(false);
  }, 300_000);
});
