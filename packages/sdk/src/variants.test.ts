import { poolId } from "@skiff/protocol/pool-id";
import { describe, expect, it } from "vitest";
import { App, collectApp, manifestOf } from "./app.js";
import { method, SkiffClass } from "./cls.js";

const decode = (part: string) => JSON.parse(Buffer.from(part, "base64url").toString()) as unknown;

describe("withOptions", () => {
  it("names a variant's pool after the function, parameters and options, in a stable order", () => {
    const id = poolId("fu-1", {}, { memoryMiB: 2048, cpu: 2 });
    expect(id).toBe(poolId("fu-1", {}, { cpu: 2, memoryMiB: 2048 }));
    const [base, params, options] = id.split("~");
    expect([base, params]).toEqual(["fu-1", ""]);
    expect(decode(options!)).toEqual({ cpu: 2, memoryMiB: 2048 });
    const both = poolId("fu-1", { size: "large" }, { cpu: 2 }).split("~");
    expect(decode(both[1]!)).toEqual({ size: "large" });
    expect(decode(both[2]!)).toEqual({ cpu: 2 });
    expect(poolId("fu-1", { size: "large" }, {})).toBe(poolId("fu-1", { size: "large" }));
  });

  it("returns a variant and leaves the function unchanged; an app collects the function only", () => {
    const app = new App("variants");
    const resize = app.function({ memory: 512 }, async (x: number) => x);
    const big = resize.withOptions({ memory: "2GiB" });
    expect(big.isVariant).toBe(true);
    expect(resize.isVariant).toBe(false);
    expect(resize.options).toEqual({ memory: 512 });
    const collected = collectApp({ app, resize, big }, "variants.ts");
    expect([...collected.functions.keys()]).toEqual(["resize"]);
    expect(manifestOf(collected, 20).functions.map((f) => [f.name, f.memoryMiB])).toEqual([["resize", 512]]);
  });

  it("checks a variant's options as a function's options are checked", () => {
    const app = new App("variants");
    const resize = app.function({ name: "resize", batched: { maxBatchSize: 4, wait: 1 } }, async (xs: number[]) => xs);
    expect(() => resize.withOptions({ gpu: "A10G" } as never)).toThrow(
      /^function "resize": withOptions: option "gpu" is not supported yet/,
    );
    expect(() => resize.withOptions({ concurrent: { maxInputs: 2 } })).toThrow(/use either batched or concurrent/);
    expect(() => resize.withOptions({ memory: 32 })).toThrow(/memory 32 MiB is too little/);
  });
});

describe("a class's methods", () => {
  it("names the class's methods when one it lacks is called", async () => {
    const Model = new SkiffClass(
      "ml",
      { name: "Model" },
      undefined,
      ["generate", "embed"],
      "fu-1",
    ) as unknown as Record<string, { remote(): Promise<unknown> }>;
    expect(() => Model.nosuch!.remote()).toThrow(
      'class "Model" has no method "nosuch"; its methods are: generate, embed',
    );
    // Probes that any value gets (await, JSON, inspection) are not calls of a missing method.
    expect(await Promise.resolve(Model)).toBe(Model);
    expect(JSON.stringify({ ok: 1, m: Model.toJSON })).toBe('{"ok":1}');
  });

  it("works for classes defined with app.cls, and their variants", () => {
    const app = new App("ml");
    const Model = app.cls(
      { name: "Model" },
      class {
        @method() generate() {
          return 1;
        }
      },
    );
    expect(() => (Model as unknown as Record<string, unknown>).embed).toThrow(/its methods are: generate/);
    const Big = Model.withOptions({ memory: "4GiB" });
    expect(Big.generate).toBeDefined();
    expect(() => (Big as unknown as Record<string, unknown>).embed).toThrow(/class "Model" has no method "embed"/);
  });
});
