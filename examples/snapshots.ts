// Memory snapshots: `skiff run examples/snapshots.ts`. The first container of Embedder runs `load` (2 s, a
// 200 MB table) and is snapshotted; every later container restores that snapshot and runs only `connect`.
import { App, currentContainerId, enter, method } from "skiff";

export const app = new App("snapshots");

export const Embedder = app.cls(
  { enableMemorySnapshot: true, memory: "1GiB", scaledownWindow: "2s" },
  class {
    table = new Float32Array(0);
    loadedIn = "";
    connectedIn = "";

    @enter({ snap: true }) async load() {
      await new Promise((resolve) => setTimeout(resolve, 2000)); // stands for reading weights from a volume
      this.table = new Float32Array(50_000_000).map((_, i) => i % 97);
      this.loadedIn = currentContainerId() ?? "";
    }

    @enter({ snap: false }) connect() {
      this.connectedIn = currentContainerId() ?? ""; // runs in every container: open connections here
    }

    @method() embed(text: string) {
      return { text, value: this.table[text.length], loadedIn: this.loadedIn, connectedIn: this.connectedIn };
    }
  },
);

export const main = app.localEntrypoint(async () => {
  for (let round = 0; round < 3; round++) {
    const started = Date.now();
    const result = await Embedder.embed.remote("hello");
    console.log(`round ${round}: ${JSON.stringify(result)} in ${Date.now() - started} ms`);
    // Past the scaledown window: the next round gets a new container.
    await new Promise((resolve) => setTimeout(resolve, 5000));
  }
});
