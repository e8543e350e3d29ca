import { poolId } from "@skiff/protocol/pool-id";
import { describe, expect, it } from "vitest";
import { App, collectApp, manifestOf } from "./app.js";
import { classShape, enter, exit, marksOf, method, parameter } from "./cls.js";

describe("classes", () => {
  it("records parameters, methods and hooks from standard decorators", () => {
    class Model {
      @parameter() size = "small";
      @parameter() layers = 4;
      @parameter() fast = false;
      cache = new Map();
      @enter() load() {}
      @enter() warm() {}
      @method() predict(x: number) {
        return x;
      }
      helper() {}
      @exit() close() {}
    }
    expect(marksOf(Model)).toEqual({
      parameters: ["size", "layers", "fast"],
      methods: ["predict"],
      enter: ["load", "warm"],
      snapEnter: [],
      exit: ["close"],
    });
    expect(classShape(Model, "class Model")).toEqual({
      methods: ["predict"],
      parameters: [
        { name: "size", type: "string" },
        { name: "layers", type: "number" },
        { name: "fast", type: "boolean" },
      ],
    });
  });

  it("records which enter hooks run before a memory snapshot, and refuses other enter options", () => {
    class Embedder {
      @enter({ snap: true }) load() {}
      @enter({ snap: false }) connect() {}
      @enter() warm() {}
      @method() embed() {}
    }
    expect(marksOf(Embedder).enter).toEqual(["load", "connect", "warm"]);
    expect(marksOf(Embedder).snapEnter).toEqual(["load"]);
    expect(classShape(Embedder, "class Embedder").snapEnter).toEqual(["load"]);
    expect(() => enter({ snap: "yes" } as unknown as { snap: boolean })).toThrow(/takes true or false/);
    expect(() => enter({ snapshot: true } as unknown as { snap: boolean })).toThrow(/not snapshot/);
  });

  it("keeps a subclass's marks apart from its parent's", () => {
    class Base {
      @method() a() {}
    }
    class Child extends Base {
      @method() b() {}
    }
    expect(marksOf(Base).methods).toEqual(["a"]);
    expect(marksOf(Child).methods).toEqual(["a", "b"]);
  });

  it("works as legacy (experimentalDecorators) decorators", () => {
    class Legacy {
      size = "s";
      run() {}
    }
    parameter()(Legacy.prototype, "size");
    method()(Legacy.prototype, "run", Object.getOwnPropertyDescriptor(Legacy.prototype, "run"));
    expect(marksOf(Legacy)).toMatchObject({ parameters: ["size"], methods: ["run"] });
  });

  it("refuses classes it cannot describe, saying what to change", () => {
    class NoMethods {
      @parameter() size = "s";
    }
    expect(() => classShape(NoMethods, 'class "X"')).toThrow(/class "X" has no @method\(\)/);
    class BadParameter {
      @parameter() when = new Date();
      @method() m() {}
    }
    expect(() => classShape(BadParameter, 'class "X"')).toThrow(/@parameter\(\) when must default to a string/);
    class Throws {
      constructor() {
        throw new Error("no GPU here");
      }
      @method() m() {}
    }
    expect(() => classShape(Throws, 'class "X"')).toThrow(
      /its constructor threw \(no GPU here\); load things in @enter\(\)/,
    );
    expect(() => {
      class Misplaced {
        @method() static s() {}
        m() {}
      }
      return Misplaced;
    }).toThrow(/@method\(\) goes on a public instance method/);
  });

  it("names pools by class id and sorted parameter values", () => {
    expect(poolId("fu-1", {})).toBe("fu-1");
    const id = poolId("fu-1", { size: "large", factor: 3 });
    expect(id).toBe(poolId("fu-1", { factor: 3, size: "large" }));
    const [base, encoded] = id.split("~");
    expect(base).toBe("fu-1");
    expect(JSON.parse(Buffer.from(encoded!, "base64url").toString())).toEqual({ factor: 3, size: "large" });
  });

  it("collects classes into the manifest with their shape and options", () => {
    const app = new App("cls-test");
    const Model = app.cls(
      { concurrent: { maxInputs: 8, targetInputs: 4 }, minContainers: 1 },
      class {
        @parameter() size = "small";
        @method() async predict(x: number) {
          return x;
        }
      },
    );
    const embed = app.function({ batched: { maxBatchSize: 16, wait: "20ms" } }, async (texts: string[]) =>
      texts.map((t) => t.length),
    );
    const manifest = manifestOf(collectApp({ app, Model, embed }, "test.ts"), 20);
    expect(manifest.functions.map((f) => [f.name, f.kind])).toEqual([
      ["embed", "function"],
      ["Model", "class"],
    ]);
    const [fn, cls] = manifest.functions;
    expect(fn).toMatchObject({ batched: { maxBatchSize: 16, waitMs: 20 }, maxInputs: 16 });
    expect(cls).toMatchObject({
      cls: { methods: ["predict"], parameters: [{ name: "size", type: "string" }] },
      maxInputs: 8,
      targetInputs: 4,
      minContainers: 1,
    });
    expect(typeof Model.predict.remote).toBe("function");
  });

  it("runs a batched function's handler locally with a batch of one", async () => {
    const app = new App("batch-test");
    const embed = app.function({ batched: { maxBatchSize: 4, wait: 0.01 } }, async (texts: string[]) =>
      texts.map((t) => t.toUpperCase()),
    );
    expect(await embed.local("abc")).toBe("ABC");
  });
});
