import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDatabase } from "../internal/store/src/testing/postgres-fixture.js";
import { hasCommand as has, Stack } from "./stack.js";

const FILE = "e2e/fixtures/calls.ts";
const root = process.getuid?.() === 0;

/** The core path on the other shapes: runc containers, and a server on PostgreSQL instead of PGlite. */
for (const shape of [
  { name: "runc containers, PGlite store", runtime: "runc", postgres: false, skip: !root || !has("runc") },
  { name: "gVisor containers, PostgreSQL store", runtime: "gvisor", postgres: true, skip: !root || !has("runsc") },
]) {
  describe.skipIf(shape.skip)(`core path on ${shape.name}`, () => {
    let stack: Stack;
    let dropDatabase: (() => Promise<void>) | undefined;
    beforeAll(async () => {
      let databaseUrl: string | undefined;
      if (shape.postgres) {
        const database = await createTestDatabase();
        databaseUrl = database.url;
        dropDatabase = database.drop;
      }
      stack = await Stack.start({ runtime: shape.runtime, ...(databaseUrl ? { databaseUrl } : {}) });
    });
    afterAll(async () => {
      await stack?.stop();
      await dropDatabase?.();
    });

    const run = async (entry: string, ...args: string[]) => {
      const result = await stack.run(["run", `${FILE}::${entry}`, ...args]);
      if (result.code !== 0)
        throw new Error(`exit ${result.code}\n${result.stdout}\n${result.stderr}\n${stack.logs()}`);
      return result.results;
    };

    it("remote, map and a crash", async () => {
      expect(await run("remote")).toEqual([{ value: 49, local: 25 }]);
      expect((await run("mapMany", "--n", "300"))[0]).toMatchObject({ count: 300, inOrder: true });
      expect((await run("crash"))[0]).toMatchObject({ after: "alive" });
    });
  });
}
