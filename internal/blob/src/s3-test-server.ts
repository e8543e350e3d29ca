import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ListObjectsV2Command, S3Client } from "@aws-sdk/client-s3";
import type S3rver from "s3rver";

/** The key pair s3rver accepts. */
export const S3_TEST_CREDENTIALS = { accessKeyId: "S3RVER", secretAccessKey: "S3RVER" };

/** An S3-compatible server for tests, in this process, on a free port, over a temporary directory. */
export interface S3TestServer {
  /** `http://127.0.0.1:PORT` */
  endpoint: string;
  /** A bucket made when the server started. */
  bucket: string;
  /** Every object in `bucket` (under `prefix`), with its size. */
  objects(prefix?: string): Promise<{ key: string; size: number }[]>;
  /** Stops the server and deletes what it stored. */
  close(): Promise<void>;
}

/** s3rver, or undefined where it cannot be loaded (S3 tests skip then, and say so). */
export async function loadS3rver(): Promise<typeof S3rver | undefined> {
  try {
    return (await import("s3rver")).default;
  } catch {
    return undefined;
  }
}

export async function startS3TestServer(bucket = "skiff-test"): Promise<S3TestServer> {
  const S3rverClass = await loadS3rver();
  if (!S3rverClass) throw new Error("s3rver cannot be loaded: run `npm ci`");
  const directory = await mkdtemp(join(tmpdir(), "skiff-s3-"));
  const server = new S3rverClass({
    address: "127.0.0.1",
    port: 0,
    silent: true,
    directory,
    configureBuckets: [{ name: bucket, configs: [] }],
  });
  const { port } = await server.run();
  const endpoint = `http://127.0.0.1:${port}`;
  const client = new S3Client({
    endpoint,
    region: "us-east-1",
    forcePathStyle: true,
    credentials: S3_TEST_CREDENTIALS,
  });
  return {
    endpoint,
    bucket,
    async objects(prefix) {
      const found: { key: string; size: number }[] = [];
      let ContinuationToken: string | undefined;
      do {
        const page = await client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken }));
        for (const object of page.Contents ?? []) found.push({ key: object.Key!, size: object.Size ?? 0 });
        ContinuationToken = page.NextContinuationToken;
      } while (ContinuationToken);
      return found;
    },
    async close() {
      client.destroy();
      await server.close();
      await rm(directory, { recursive: true, force: true });
    },
  };
}
