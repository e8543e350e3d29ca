import { createHash } from "node:crypto";
import { createReadStream, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { readdir } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Stack } from "./stack.js";
import { rssGrowthDuring } from "./web-helpers.js";

const MiB = 1024 * 1024;

async function sha256Of(path: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const piece of createReadStream(path)) hash.update(piece as Buffer);
  return hash.digest("hex");
}

/** Writes `size` bytes that differ in every MiB (so that no two chunks are alike), a MiB at a time. */
function writeBig(path: string, size: number): void {
  const piece = Buffer.alloc(MiB);
  writeFileSync(path, "");
  for (let at = 0; at < size; at += MiB) {
    piece.writeUInt32LE(at / MiB, 0);
    piece.fill(at / MiB, 4, 64);
    writeFileSync(path, piece.subarray(0, Math.min(MiB, size - at)), { flag: "a" });
  }
}

/** Volumes through the real CLI, server, worker and a container, with the SDK inside it. */
describe("volumes", () => {
  let stack: Stack;
  let work: string;
  const skiff = async (args: string[], options: { input?: string } = {}) => {
    const result = await stack.run(args, { timeoutMs: 300_000, ...options });
    expect(result.code, `skiff ${args.join(" ")}\n${result.stderr}`).toBe(0);
    return result;
  };
  const blobCount = async () => (await readdir(join(stack.home, "blobs"), { recursive: true })).length;

  beforeAll(async () => {
    stack = await Stack.start();
    work = join(stack.home, "work");
    mkdirSync(work);
  }, 120_000);

  afterAll(async () => {
    await stack?.stop();
  });

  it("puts a directory recursively, lists it and gets it back the same", async () => {
    const unknown = await stack.run(["volume", "ls", "e2e-data"]);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(
      /no volume "e2e-data" in environment "main": create it with `skiff volume create e2e-data`/,
    );
    await skiff(["volume", "create", "e2e-data"]);
    const tree = join(work, "tree");
    mkdirSync(join(tree, "in", "deep"), { recursive: true });
    writeFileSync(join(tree, "in", "hello.txt"), "hello volume");
    writeFileSync(join(tree, "in", "deep", "a.json"), JSON.stringify({ a: 1 }));
    writeFileSync(join(tree, "top.txt"), "top");
    await skiff(["volume", "put", "e2e-data", tree, "/"]);
    const listed = await skiff(["volume", "ls", "e2e-data"]);
    expect(
      listed.stdout
        .trim()
        .split("\n")
        .map((line) => line.split(/\s+/).at(-1)),
    ).toEqual(["in/", "top.txt"]);
    const deep = await skiff(["volume", "ls", "e2e-data", "in", "-r"]);
    expect(deep.stdout).toMatch(/in\/deep\/a\.json/);
    const back = join(work, "back");
    await skiff(["volume", "get", "e2e-data", "/", back]);
    for (const file of ["in/hello.txt", "in/deep/a.json", "top.txt"]) {
      expect(readFileSync(join(back, file), "utf8")).toBe(readFileSync(join(tree, file), "utf8"));
    }
    const stdout = await skiff(["volume", "get", "e2e-data", "top.txt", "-"]);
    expect(stdout.stdout).toBe("top");
    await skiff(["volume", "put", "e2e-data", "-", "piped/stdin.txt"], { input: "from stdin" });
    expect((await skiff(["volume", "get", "e2e-data", "piped/stdin.txt", "-"])).stdout).toBe("from stdin");
    await skiff(["volume", "cp", "e2e-data", "in", "copied"]);
    expect((await skiff(["volume", "get", "e2e-data", "copied/hello.txt", "-"])).stdout).toBe("hello volume");
  }, 300_000);

  it("streams a 1 GiB file in and out, checksummed, without memory growing with its size; stores it once", async () => {
    const big = join(work, "big.bin");
    writeBig(big, 1024 * MiB);
    const expected = await sha256Of(big);
    let put: Awaited<ReturnType<typeof skiff>> | undefined;
    const putGrowth = await rssGrowthDuring(stack, async () => {
      put = await skiff(["volume", "put", "e2e-data", big, "blobs/big.bin"]);
    });
    expect(put!.stderr).toMatch(/put 1 file \(1 GiB\)/);
    const blobsAfterFirst = await blobCount();
    const again = await skiff(["volume", "put", "e2e-data", big, "blobs/again.bin"]);
    expect(again.stderr).toMatch(/1 GiB already stored/);
    expect(await blobCount()).toBe(blobsAfterFirst);
    const out = join(work, "big.out");
    const getGrowth = await rssGrowthDuring(stack, async () => {
      await skiff(["volume", "get", "e2e-data", "blobs/big.bin", out]);
    });
    expect(statSync(out).size).toBe(1024 * MiB);
    expect(await sha256Of(out)).toBe(expected);
    console.log(`server RSS growth: put ${putGrowth.server} MiB, get ${getGrowth.server} MiB`);
    // Two 8 MiB chunks in flight, and what the process holds anyway: far below the file's 1 GiB.
    expect(putGrowth.server).toBeLessThan(80);
    expect(getGrowth.server).toBeLessThan(80);
    rmSync(big);
    rmSync(out);
  }, 300_000);

  it("lets a function read and write the volume with its container's token", async () => {
    await skiff(["volume", "create", "e2e-other"]);
    const run = await stack.run(["run", "e2e/fixtures/volumes-app.ts"], { timeoutMs: 300_000 });
    expect(run.code, run.stderr).toBe(0);
    const [result] = run.results as { text: string; version: number; listed: string[]; author: string }[];
    expect(result).toMatchObject({ text: "hello volume", listed: ["from-fn/x.txt"] });
    expect(result!.author).toMatch(/^container ct-/);
    expect((result as { other?: string }).other).toMatch(/reaches only the volumes its function mounts/);
    expect((await skiff(["volume", "get", "e2e-data", "from-fn/x.txt", "-"])).stdout).toBe("HELLO VOLUME");
  }, 300_000);

  it("removes, keeps every version in the history, and rolls back", async () => {
    const refused = await stack.run(["volume", "rm", "e2e-data", "in"]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/is a directory: .*skiff volume rm e2e-data in -r/);
    await skiff(["volume", "rm", "e2e-data", "in", "-r"]);
    const gone = await stack.run(["volume", "get", "e2e-data", "in/hello.txt", "-"]);
    expect(gone.code).toBe(1);
    const history = await skiff(["volume", "history", "e2e-data"]);
    const lines = history.stdout.trim().split("\n");
    expect(lines[0]).toMatch(/^v\d+\t.*\ttoken tk-[0-9a-f]+ \(cli\)\trm -r in$/);
    expect(lines.at(-1)).toMatch(/^v1\t.*\tcreated$/);
    expect(history.stdout).toMatch(/container ct-\S+ \(sdk\)\tput from-fn\/x\.txt/);
    await skiff(["volume", "rollback", "e2e-data"]);
    expect((await skiff(["volume", "get", "e2e-data", "in/hello.txt", "-"])).stdout).toBe("hello volume");
    await skiff(["volume", "delete", "e2e-data"]);
    await skiff(["volume", "delete", "e2e-other"]);
    expect((await skiff(["volume", "list"])).stderr).toMatch(/no volumes in "main"/);
  }, 300_000);
});
