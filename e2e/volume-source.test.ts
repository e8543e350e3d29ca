import { createHash } from "node:crypto";
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Volume } from "skiff";
import { Client } from "skiff/plumbing";
import { credentialOf, readProfiles, resolveProfile } from "skiff/profiles";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ApiVolumeSource } from "../apps/worker/src/volumes/api-volume-source.js";
import { VolumeMount } from "../apps/worker/src/volumes/volume-mount.js";
import { fuseUnavailable } from "../apps/worker/src/volumes/volume-test-kit.js";
import { Stack } from "./stack.js";

const MiB = 1024 * 1024;

async function text(stream: AsyncIterable<Buffer | Uint8Array>): Promise<string> {
  const pieces: Buffer[] = [];
  for await (const piece of stream) pieces.push(Buffer.from(piece));
  return Buffer.concat(pieces).toString();
}

/**
 * The worker's view of a volume through the server's volume API (what a container's mount reads and commits
 * through), against a real server: versions, listings, ranged reads, a commit that uploads chunks, merges
 * with another writer's commit and copies without bytes; then an rclone mount on the host over it.
 */
describe("a volume through the volume API, as a mount reaches it", () => {
  let stack: Stack;
  let client: Client;
  let scratch: string;

  beforeAll(async () => {
    stack = await Stack.start();
    const profile = resolveProfile(await readProfiles(stack.home), stack.env);
    client = new Client({ serverUrl: stack.url, agent: "sdk", token: credentialOf(profile) });
    scratch = await mkdtemp(join(tmpdir(), "skiff-volume-source-"));
  }, 120_000);

  afterAll(async () => {
    client?.close();
    await stack?.stop();
    await rm(scratch, { recursive: true, force: true });
  });

  it("reads versions, lists, reads ranges, and commits new files, directories and deletes onto the latest", async () => {
    const sdk = Volume.withClient(client, "e2e-source", { environment: "main", createIfMissing: true });
    await sdk.write("keep/a.txt", "alpha");
    await sdk.write("gone.txt", "to delete");
    const source = new ApiVolumeSource(client, "e2e-source", "main");
    const base = await source.latest();
    expect(await source.stat(base, "/keep/a.txt")).toMatchObject({ path: "/keep/a.txt", type: "file", size: 5 });
    expect(await source.stat(base, "/nothing")).toBeUndefined();
    expect((await source.list(base, "/"))?.map((e) => e.path).sort()).toEqual(["/gone.txt", "/keep"]);
    expect(await source.list(base, "/keep/a.txt")).toBeUndefined();
    expect(await source.list(base, "/nothing")).toBeUndefined();
    expect(await text(await source.read(base, "/keep/a.txt", { offset: 1, length: 3 }))).toBe("lph");

    // Another writer commits after this base: a commit onto it keeps their file.
    await sdk.write("theirs.txt", "theirs");
    const big = join(scratch, "big.bin");
    const bytes = Buffer.alloc(9 * MiB + 7);
    for (let i = 0; i < bytes.length; i += 4096) bytes.writeUInt32LE(i, i);
    await writeFile(big, bytes);
    const committed = await source.commit(base, [
      { op: "delete", path: "/gone.txt" },
      { op: "mkdir", path: "/empty", mtimeMs: 1_700_000_000_000 },
      { op: "put", path: "/data/big.bin", content: { file: big }, size: bytes.length, mtimeMs: 1_700_000_000_000 },
      {
        op: "put",
        path: "/keep/b.txt",
        content: { copyOf: { version: base, path: "/keep/a.txt" } },
        size: 5,
        mtimeMs: 1,
      },
    ]);
    expect(Number(committed)).toBeGreaterThan(Number(base));
    const paths = [];
    for await (const entry of sdk.list("/", { recursive: true })) paths.push(entry.path);
    expect(paths.sort()).toEqual(["data", "data/big.bin", "empty", "keep", "keep/a.txt", "keep/b.txt", "theirs.txt"]);
    const back = Buffer.from(await sdk.read("data/big.bin"));
    expect(createHash("sha256").update(back).digest("hex")).toBe(createHash("sha256").update(bytes).digest("hex"));
    expect(new TextDecoder().decode(await sdk.read("keep/b.txt"))).toBe("alpha");
    // The copy shares the chunks of its source: equal content, equal tags.
    const [a, b] = await Promise.all([source.stat(committed, "/keep/a.txt"), source.stat(committed, "/keep/b.txt")]);
    expect(a?.etag).toBe(b?.etag);
  }, 240_000);

  it("mounts it on the host with rclone: reads what the API holds, and commits what is written", async () => {
    const missing = await fuseUnavailable();
    if (missing) {
      console.warn(`skipped: ${missing}`);
      return;
    }
    const sdk = Volume.withClient(client, "e2e-mounted", { environment: "main", createIfMissing: true });
    await sdk.write("hello.txt", "hello from the API");
    const mount = await VolumeMount.mount({
      source: new ApiVolumeSource(client, "e2e-mounted", "main"),
      dir: join(scratch, "mount"),
      autoCommitMs: 0,
    });
    try {
      expect(await readFile(join(mount.hostPath, "hello.txt"), "utf8")).toBe("hello from the API");
      await writeFile(join(mount.hostPath, "written.txt"), "written through the mount");
      await mount.commit();
      expect(new TextDecoder().decode(await sdk.read("written.txt"))).toBe("written through the mount");
      await sdk.write("later.txt", "from the API again");
      await mount.reload();
      expect((await readdir(mount.hostPath)).sort()).toEqual(["hello.txt", "later.txt", "written.txt"]);
    } finally {
      await mount.close({ commit: false });
    }
  }, 240_000);
});
