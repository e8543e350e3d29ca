import { createHash, randomUUID } from "node:crypto";
import { createServer } from "node:net";
import { Readable } from "node:stream";
import { PutObjectCommand } from "@aws-sdk/client-s3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { describeBlobStoreConformance } from "./blob-store.conformance.js";
import { S3BlobStore, type S3BlobStoreOptions } from "./s3-blob-store.js";
import { loadS3rver, S3_TEST_CREDENTIALS, type S3TestServer, startS3TestServer } from "./s3-test-server.js";

const MiB = 1024 * 1024;
const canRun = (await loadS3rver()) !== undefined;
if (!canRun) console.warn("s3rver cannot be loaded (run `npm ci`): the S3 blob store tests are skipped");

/** `bytes` bytes made on the fly, 64 KiB at a time, the same each time for the same seed. */
function* generated(bytes: number, seed: number): Generator<Buffer> {
  const piece = 64 * 1024;
  for (let at = 0; at < bytes; at += piece) {
    const chunk = Buffer.alloc(Math.min(piece, bytes - at));
    for (let i = 0; i + 4 <= chunk.length; i += 4) chunk.writeUInt32LE((Math.imul(at + i, 2654435761) + seed) >>> 0, i);
    yield chunk;
  }
}

function hashOf(pieces: Iterable<Uint8Array>): string {
  const hasher = createHash("sha256");
  for (const piece of pieces) hasher.update(piece);
  return hasher.digest("hex");
}

/** The names of the commands `store` sends, and the body bytes of those that succeeded, as they happen. */
function watch(store: S3BlobStore): { commands: string[]; acknowledgedBytes: () => number } {
  const commands: string[] = [];
  let acknowledged = 0;
  store.client.middlewareStack.add(
    (next, context) => async (args) => {
      commands.push(context.commandName ?? "");
      const result = await next(args);
      const body = (args.input as { Body?: unknown }).Body;
      if (body instanceof Uint8Array) acknowledged += body.length;
      return result;
    },
    { step: "initialize" },
  );
  return { commands, acknowledgedBytes: () => acknowledged };
}

async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

describe.skipIf(!canRun)("S3 blob store", () => {
  let server: S3TestServer;
  const stores: S3BlobStore[] = [];
  beforeAll(async () => {
    server = await startS3TestServer();
  });
  afterAll(async () => {
    for (const store of stores) store.close();
    await server?.close();
  });

  /** A store on the test server, under a key prefix of its own unless `options` names one. */
  function open(options: Partial<S3BlobStoreOptions> = {}): S3BlobStore {
    const store = new S3BlobStore({
      bucket: server.bucket,
      endpoint: server.endpoint,
      region: "us-east-1",
      forcePathStyle: true,
      credentials: S3_TEST_CREDENTIALS,
      keyPrefix: randomUUID(),
      ...options,
    });
    stores.push(store);
    return store;
  }

  describeBlobStoreConformance("S3", async () => open());

  it("keeps each blob at PREFIX/blobs/ab/abcd…, so installs with other prefixes share the bucket", async () => {
    const store = open({ keyPrefix: "install-a/" });
    const hash = await store.put(new TextEncoder().encode("hello"));
    expect(await server.objects("install-a/")).toEqual([
      { key: `install-a/blobs/${hash.slice(0, 2)}/${hash}`, size: 5 },
    ]);
    expect(await open({ keyPrefix: "install-b" }).has(hash)).toBe(false);
  });

  it("streams a 64 MiB blob up in parts, never holding much more than the parts in flight", async () => {
    const store = open({ partBytes: 5 * MiB, partsInFlight: 2 });
    const { commands, acknowledgedBytes } = watch(store);
    const size = 64 * MiB;
    const hash = hashOf(generated(size, 7));
    let produced = 0;
    let mostAhead = 0;
    const counted = Readable.from(
      (function* () {
        for (const chunk of generated(size, 7)) {
          produced += chunk.length;
          mostAhead = Math.max(mostAhead, produced - acknowledgedBytes());
          yield chunk;
        }
      })(),
    );
    expect(await store.putStream(counted, { hash, size, maxBytes: size })).toBe(hash);
    expect(produced).toBe(size);
    // Two parts in flight, one gathering and the piece just read: well short of the whole blob.
    expect(mostAhead).toBeLessThanOrEqual(3 * 5 * MiB + 64 * 1024);
    expect(commands.filter((name) => name === "UploadPartCommand").length).toBeGreaterThanOrEqual(12);
    expect(commands).toContain("CompleteMultipartUploadCommand");
    const reader = await store.getStream(hash);
    expect(reader?.size).toBe(size);
    expect(hashOf(await reader!.stream.toArray())).toBe(hash);
  });

  it("leaves no object behind a streamed upload that does not match, even one sent in parts", async () => {
    const store = open({ partBytes: 5 * MiB });
    const { commands } = watch(store);
    const prefix = store.keyOf("0".repeat(64)).split("/blobs/")[0]!;
    const size = 12 * MiB;
    const hash = hashOf(generated(size, 1));
    await expect(
      store.putStream(Readable.from(generated(size, 2)), { hash, size, maxBytes: size }),
    ).rejects.toMatchObject({ code: "BLOB_MISMATCH" });
    await expect(
      store.putStream(Readable.from(generated(size, 1)), { hash, maxBytes: size - 1 }),
    ).rejects.toMatchObject({ code: "BLOB_TOO_LARGE" });
    const count = (command: string) => commands.filter((name) => name === command).length;
    expect(count("CreateMultipartUploadCommand")).toBe(2);
    expect(count("CompleteMultipartUploadCommand")).toBe(0);
    // (s3rver cannot abort an upload, and keeps its parts; none of them shows as an object.)
    expect(count("AbortMultipartUploadCommand")).toBe(2);
    expect(await server.objects(`${prefix}/`)).toEqual([]);
    expect(await store.has(hash)).toBe(false);
  });

  it("fails a read of an object whose bytes no longer match its hash", async () => {
    const store = open();
    const hash = await store.put(new TextEncoder().encode("hello"));
    await store.client.send(new PutObjectCommand({ Bucket: server.bucket, Key: store.keyOf(hash), Body: "hellp" }));
    await expect(store.get(hash)).rejects.toMatchObject({ code: "BLOB_CORRUPT" });
    const reader = await store.getStream(hash);
    await expect(reader!.stream.toArray()).rejects.toThrow(/corrupt at key/);
  });

  it("says what to fix when the bucket is missing, the credentials are wrong or the endpoint is down", async () => {
    const hello = new TextEncoder().encode("hello");
    const noBucket = open({ bucket: "no-such-bucket" });
    await expect(noBucket.check()).rejects.toMatchObject({ code: "BLOB_UNAVAILABLE" });
    await expect(noBucket.check()).rejects.toThrow(/"no-such-bucket".*the bucket does not exist.*create it/);
    await expect(noBucket.put(hello)).rejects.toThrow(/the bucket does not exist/);

    // s3rver checks a (V4) signature's access key, not the signature itself: a wrong key stands for both.
    const wrongKey = open({ credentials: { accessKeyId: "NOBODY", secretAccessKey: "S3RVER" } });
    await expect(wrongKey.check()).rejects.toThrow(/refused .*check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY/);
    await expect(wrongKey.put(hello)).rejects.toThrow(/refused .*check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY/);
    await expect(wrongKey.get("0".repeat(64))).rejects.toThrow(/refused the credentials \(InvalidAccessKeyId/);

    const down = open({ endpoint: `http://127.0.0.1:${await closedPort()}` });
    await expect(down.check()).rejects.toThrow(/cannot reach the S3 endpoint \(ECONNREFUSED\)/);
    await expect(down.put(hello)).rejects.toMatchObject({ code: "BLOB_UNAVAILABLE" });
  });
});
