import type { FunctionSpec } from "@skiff/protocol";
import { describe, expect, it } from "vitest";
import { testSpec } from "../engine/test-spec.js";
import { LabelClaims } from "./web-labels.js";

const web = testSpec({ name: "site", web: { kind: "fetch", label: "site", docs: false, requiresProxyAuth: false } });
const plain: FunctionSpec = testSpec({ name: "plain" });
const main = { workspace: "ws-a", env: "main" };

describe("LabelClaims", () => {
  it("runs the claims of one environment one after another, even when one fails", async () => {
    const claims = new LabelClaims();
    const order: string[] = [];
    let release: () => void = () => {};
    const first = claims.run(main, [web], async () => {
      order.push("first starts");
      await new Promise<void>((resolve) => {
        release = resolve;
      });
      order.push("first ends");
      throw new Error("refused");
    });
    const second = claims.run(main, [web], async () => {
      order.push("second");
      return 2;
    });
    await new Promise((resolve) => setTimeout(resolve, 10));
    expect(order).toEqual(["first starts"]);
    release();
    await expect(first).rejects.toThrow("refused");
    expect(await second).toBe(2);
    expect(order).toEqual(["first starts", "first ends", "second"]);
  });

  it("lets other environments, and apps without a web function, go at once", async () => {
    const claims = new LabelClaims();
    const held = claims.run(main, [web], () => new Promise<void>(() => {}));
    expect(await claims.run({ ...main, env: "staging" }, [web], async () => "staging")).toBe("staging");
    expect(await claims.run({ ...main, workspace: "ws-b" }, [web], async () => "b")).toBe("b");
    expect(await claims.run(main, [plain], async () => "plain")).toBe("plain");
    void held;
  });
});
