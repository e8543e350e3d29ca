import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Stack } from "./stack.js";

/** Payloads travel whole: a large argument and result cross server, worker and container intact. */
describe("large payloads", () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await Stack.start();
  });
  afterAll(async () => {
    await stack?.stop();
  });

  it("round-trips a 150 MiB argument and result through a container", async () => {
    const result = await stack.run(["run", "e2e/fixtures/payloads.ts::roundTrip", "--mib", "150"]);
    if (result.code !== 0) throw new Error(`exit ${result.code}\n${result.stdout}\n${result.stderr}\n${stack.logs()}`);
    expect(result.results).toEqual([
      { argBytes: 150 * 1024 * 1024, argIntact: true, resultBytes: 150 * 1024 * 1024 + 3, resultIntact: true },
    ]);
  }, 600_000);
});
