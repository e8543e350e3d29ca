import { mkdtemp, rename, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { FileWatch } from "./file-watch.js";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe("FileWatch", () => {
  let dir: string;
  let changes: number;
  let watch: FileWatch;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "skiff-watch-"));
    changes = 0;
    watch = new FileWatch(() => changes++, 50);
  });
  afterEach(async () => {
    watch.close();
    await rm(dir, { recursive: true, force: true });
  });

  it("calls once for a burst of writes to a watched file, and not for other files beside it", async () => {
    const app = join(dir, "app.ts");
    await writeFile(app, "1");
    watch.watch([app]);
    await writeFile(join(dir, "other.ts"), "x");
    await sleep(150);
    expect(changes).toBe(0);
    for (let i = 0; i < 5; i++) await writeFile(app, String(i));
    await sleep(200);
    expect(changes).toBe(1);
  });

  it("sees a file saved by renaming a new one over it, and stops after close", async () => {
    const app = join(dir, "app.ts");
    await writeFile(app, "1");
    watch.watch([app]);
    await writeFile(join(dir, ".app.ts.swp"), "2");
    await rename(join(dir, ".app.ts.swp"), app);
    await sleep(200);
    expect(changes).toBe(1);
    watch.close();
    await writeFile(app, "3");
    await sleep(200);
    expect(changes).toBe(1);
  });
});
