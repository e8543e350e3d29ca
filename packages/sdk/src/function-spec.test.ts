import { manifestProblem } from "@skiff/protocol";
import { MIN_MEMORY_MIB } from "@skiff/protocol/options";
import { describe, expect, it } from "vitest";
import { App } from "./app.js";
import { CloudBucketMount } from "./bucket-mount.js";
import { type FunctionOptions, toFunctionSpec, toSpecOverrides, type VariantOptions } from "./function-spec.js";
import { Secret } from "./secret.js";
import { Volume } from "./volume.js";

const shape = { methods: ["run"], parameters: [] };

describe("toFunctionSpec", () => {
  it("fills defaults and normalizes friendly units", () => {
    const spec = toFunctionSpec("f", { timeout: "2m", memory: "2GiB", retries: 3, scaledownWindow: 5 }, 20);
    expect(spec).toMatchObject({
      timeoutMs: 120_000,
      memoryMiB: 2048,
      retries: { maxRetries: 3, initialDelayMs: 1000, backoffCoefficient: 2, maxDelayMs: 60_000 },
      scaledownWindowMs: 5000,
      maxInputs: 1,
      cpu: 1,
      image: { base: "debian-bookworm", nodeMajor: 20, layers: [], mounts: [] },
    });
  });

  it("refuses bad values with a message that names the option and the fix", () => {
    expect(() => toFunctionSpec("f", { timeout: "ten minutes" }, 20)).toThrow(
      /function "f": timeout "ten minutes" is not a duration: use seconds \(30\) or a string like "500ms"/,
    );
    expect(() => toFunctionSpec("f", { memory: "lots" }, 20)).toThrow(/function "f": memory "lots" is not a size/);
    expect(() => toFunctionSpec("f", { minContainers: 5, maxContainers: 2 }, 20)).toThrow(
      /maxContainers \(2\) must be at least minContainers \(5\)/,
    );
    expect(() => toFunctionSpec("f", { retries: 1.5 }, 20)).toThrow(/retries must be a whole number from 0 to 100/);
  });
});

describe("volumes", () => {
  it("turns volumes and bucket mounts into the spec's mounts, checked", () => {
    const models = Volume.fromName("models", { createIfMissing: true });
    const spec = toFunctionSpec(
      "f",
      {
        volumes: {
          "/models": models,
          "/ro": Volume.fromName("weights").readOnly(),
          "/data": CloudBucketMount("datasets", {
            endpoint: "http://127.0.0.1:9000",
            keyPrefix: "/train/",
            readOnly: true,
          }),
        },
      },
      20,
    );
    expect(spec.volumes).toEqual([
      { kind: "volume", path: "/models", name: "models", readOnly: false, createIfMissing: true },
      { kind: "volume", path: "/ro", name: "weights", readOnly: true, createIfMissing: false },
      {
        kind: "bucket",
        path: "/data",
        bucket: "datasets",
        endpoint: "http://127.0.0.1:9000",
        region: "us-east-1",
        keyPrefix: "train/",
        readOnly: true,
      },
    ]);
    expect(() => toFunctionSpec("f", { volumes: { "/proc": models } }, 20)).toThrow(
      /function "f": .*cannot mount over \/proc/,
    );
    expect(() => toFunctionSpec("f", { volumes: { "/a": models, "/b": models } }, 20)).toThrow(/mounted twice/);
    expect(() => toFunctionSpec("f", { volumes: { "/a": {} } } as unknown as FunctionOptions, 20)).toThrow(
      /volumes\["\/a"\] must be Volume.fromName/,
    );
    const elsewhere = Volume.fromName("models", { environment: "staging" });
    expect(() => toFunctionSpec("f", { volumes: { "/a": elsewhere } }, 20)).toThrow(/drop `environment`/);
    expect(() => CloudBucketMount("Bad_Bucket")).toThrow(/not a bucket name/);
    expect(() => toSpecOverrides("f", { volumes: {} } as VariantOptions, undefined)).toThrow(
      /unknown option "volumes"/,
    );
  });
});

describe("memory snapshots", () => {
  it("takes enableMemorySnapshot on functions and classes, and refuses what does not fit with it", () => {
    expect(toFunctionSpec("f", { enableMemorySnapshot: true }, 20).memorySnapshot).toBe(true);
    expect(toFunctionSpec("f", {}, 20).memorySnapshot).toBeUndefined();
    const snapShape = { ...shape, snapEnter: ["load"] };
    expect(toFunctionSpec("m", { enableMemorySnapshot: true }, 20, snapShape).cls?.snapEnter).toEqual(["load"]);
    expect(() => toFunctionSpec("m", {}, 20, snapShape)).toThrow(
      /^class "m": @enter\(\{ snap: true \}\) load runs before a memory snapshot, and the class takes none: add enableMemorySnapshot: true/,
    );
    // The server refuses the same in a manifest it is sent.
    const { memorySnapshot: _, ...without } = toFunctionSpec("m", { enableMemorySnapshot: true }, 20, snapShape);
    expect(manifestProblem({ name: "a", functions: [without] })).toMatch(
      /^class "m": option "memorySnapshot": @enter\(\{ snap: true \}\) load runs before a memory snapshot/,
    );
    expect(() => toFunctionSpec("f", { enableMemorySnapshot: "yes" } as unknown as FunctionOptions, 20)).toThrow(
      /enableMemorySnapshot must be true or false/,
    );
    expect(() => toSpecOverrides("f", { enableMemorySnapshot: true } as VariantOptions, undefined)).toThrow(
      /unknown option "enableMemorySnapshot"/,
    );
  });
});

describe("option names", () => {
  it("refuses an option Skiff does not implement yet, naming the function and the option", () => {
    expect(() => toFunctionSpec("resize", { gpu: "A10G" } as FunctionOptions, 20)).toThrow(
      /^function "resize": option "gpu" is not supported yet \(Skiff has no GPUs yet\): remove it$/,
    );
    expect(() => toFunctionSpec("m", { region: "eu" } as FunctionOptions, 20, shape)).toThrow(
      /^class "m": option "region" is not supported yet/,
    );
    expect(() => toFunctionSpec("r", { ephemeralDisk: 1024 } as FunctionOptions, 20)).toThrow(
      /function "r": option "ephemeralDisk" is not supported yet/,
    );
  });

  it("refuses an unknown option with the nearest known name and the list", () => {
    expect(() => toFunctionSpec("f", { memoryMiB: 512 } as FunctionOptions, 20)).toThrow(
      /^function "f": unknown option "memoryMiB" \(did you mean "memory"\?\); known options: name, timeout, retries, cpu, memory/,
    );
    expect(() => toFunctionSpec("f", { webEndpoint: {} } as FunctionOptions, 20)).toThrow(
      /^function "f": unknown option "webEndpoint"; known options: /,
    );
    expect(() => toFunctionSpec("f", { retries: { maxretries: 2 } } as unknown as FunctionOptions, 20)).toThrow(
      /function "f": retries: unknown field "maxretries" \(did you mean "maxRetries"\?\)/,
    );
    expect(() => toFunctionSpec("c", { batched: { maxBatchSize: 2, wait: 1 } }, 20, shape)).toThrow(
      /class "c": unknown option "batched"/,
    );
  });

  it("refuses memory Node cannot start in, and cpu that is not a number", () => {
    expect(() => toFunctionSpec("f", { memory: 16 }, 20)).toThrow(
      `function "f": memory 16 MiB is too little: Node needs at least ${MIN_MEMORY_MIB} MiB to start; raise memory`,
    );
    expect(() => toFunctionSpec("f", { cpu: "2" as unknown as number }, 20)).toThrow(/cpu must be a number of cores/);
  });

  it("checks names when the function is defined, pointing at the caller's line", () => {
    const app = new App("names");
    let error: Error | undefined;
    try {
      app.function({ gpu: "A10G" } as FunctionOptions, async () => 1);
    } catch (caught) {
      error = caught as Error;
    }
    expect(error?.message).toBe(
      'app.function(options): option "gpu" is not supported yet (Skiff has no GPUs yet): remove it',
    );
    expect(error?.stack).toMatch(/function-spec\.test\.ts/);
    expect(() => app.cls({ name: "M", webEndpoint: true } as never, class {})).toThrow(
      /^class "M": unknown option "webEndpoint"/,
    );
  });
});

describe("toSpecOverrides", () => {
  it("turns withOptions into the spec fields it changes, checked as options are", () => {
    expect(toSpecOverrides("f", { memory: "2GiB", cpu: 2, timeout: "1m" }, undefined)).toEqual({
      memoryMiB: 2048,
      cpu: 2,
      timeoutMs: 60_000,
    });
    expect(toSpecOverrides("f", { concurrent: { maxInputs: 4 } }, {})).toEqual({ maxInputs: 4 });
    expect(toSpecOverrides("f", { batched: { maxBatchSize: 8, wait: 1 } }, { concurrent: { maxInputs: 2 } })).toEqual({
      batched: { maxBatchSize: 8, waitMs: 1000 },
      maxInputs: 8,
    });
    expect(toSpecOverrides("f", { minContainers: 3 }, undefined)).toEqual({ minContainers: 3 });
  });

  it("refuses what options refuse, and what a variant cannot change", () => {
    expect(() => toSpecOverrides("f", { gpu: "A10G" } as VariantOptions, undefined)).toThrow(
      /^function "f": withOptions: option "gpu" is not supported yet/,
    );
    expect(() => toSpecOverrides("f", { image: {} } as VariantOptions, undefined)).toThrow(
      /^function "f": withOptions: unknown option "image"/,
    );
    expect(() => toSpecOverrides("f", { memory: 8 }, undefined)).toThrow(/memory 8 MiB is too little/);
    expect(() => toSpecOverrides("f", { minContainers: 5 }, { maxContainers: 2 })).toThrow(
      /maxContainers \(2\) must be at least minContainers \(5\)/,
    );
    expect(() => toSpecOverrides("f", { secrets: [Secret.fromObject({ A: "1" })] }, undefined)).toThrow(
      /secrets takes Secret\.fromName\(\.\.\.\) only/,
    );
  });
});
