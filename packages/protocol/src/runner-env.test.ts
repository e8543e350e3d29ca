import { describe, expect, it } from "vitest";
import { parseRunnerEnvironment } from "./parse-runner-env.js";
import { RunnerEnvironment, runnerEnvironment } from "./runner-env.js";

const minimal = { SKIFF_SOCKET: "/s/runner.sock", SKIFF_BUNDLE: "/b/bundle.mjs", SKIFF_FUNCTION: "fn" };

describe("the runner's environment", () => {
  it("reads back what the worker writes", () => {
    const values: RunnerEnvironment = {
      ...minimal,
      SKIFF_API_SOCKET: "/s/api.sock",
      SKIFF_MAX_INPUTS: 4,
      SKIFF_PARAMS: '{"size":"large"}',
      SKIFF_BATCH: { maxBatchSize: 8, waitMs: 50 },
      SKIFF_CONTAINER_ID: "ct-1",
      SKIFF_APP_ID: "ap-1",
      SKIFF_ENV: "staging",
      SKIFF_FUNCTION_IDS: { other: "fu-2" },
    };
    const env = runnerEnvironment(values);
    expect(env.SKIFF_MAX_INPUTS).toBe("4");
    expect(parseRunnerEnvironment(env)).toEqual(values);
  });

  it("leaves unset what is undefined", () => {
    expect(runnerEnvironment({ SKIFF_PARAMS: undefined })).toEqual({});
    expect(runnerEnvironment({ SKIFF_PARAMS: "{}" })).toEqual({ SKIFF_PARAMS: "{}" });
  });

  it("names each variable that is wrong", () => {
    expect(() => parseRunnerEnvironment({})).toThrow(
      "SKIFF_SOCKET is missing, SKIFF_BUNDLE is missing, SKIFF_FUNCTION is missing",
    );
    expect(() => parseRunnerEnvironment({ ...minimal, SKIFF_MAX_INPUTS: "0" })).toThrow(/SKIFF_MAX_INPUTS must be/);
    expect(() => parseRunnerEnvironment({ ...minimal, SKIFF_BATCH: "{" })).toThrow(/SKIFF_BATCH is not JSON/);
  });

  it("parseRunnerEnvironment accepts exactly what RunnerEnvironment accepts, and returns the same settings", () => {
    const samples: Record<string, string | undefined>[] = [
      {},
      minimal,
      { ...minimal, SKIFF_SOCKET: "" },
      { ...minimal, SKIFF_FUNCTION: undefined },
      { ...minimal, UNRELATED: "x" },
      { ...minimal, SKIFF_API_SOCKET: "" },
      { ...minimal, SKIFF_ENV: "" },
      { ...minimal, SKIFF_APP_ID: "ap-1", SKIFF_CONTAINER_ID: "ct-1", SKIFF_PARAMS: "not json is fine" },
      ...["1", "16", "0", "-1", "1.5", '"2"', "", "x", "1e400", "null"].map((value) => ({
        ...minimal,
        SKIFF_MAX_INPUTS: value,
      })),
      ...[
        '{"maxBatchSize":4,"waitMs":0}',
        '{"maxBatchSize":4,"waitMs":10,"extra":true}',
        '{"maxBatchSize":0,"waitMs":10}',
        '{"maxBatchSize":1001,"waitMs":10}',
        '{"maxBatchSize":4,"waitMs":-1}',
        '{"maxBatchSize":4}',
        "[4,10]",
        "null",
        "4",
        "",
        "{",
      ].map((value) => ({ ...minimal, SKIFF_BATCH: value })),
      ...['{"a":"fu-1"}', "{}", '{"a":1}', '["fu-1"]', "null", '"fu-1"', ""].map((value) => ({
        ...minimal,
        SKIFF_FUNCTION_IDS: value,
      })),
    ];
    for (const sample of samples) {
      const schema = RunnerEnvironment.safeParse(sample);
      let parsed: RunnerEnvironment | undefined;
      try {
        parsed = parseRunnerEnvironment(sample);
      } catch {
        parsed = undefined;
      }
      expect(parsed, JSON.stringify(sample)).toEqual(schema.success ? schema.data : undefined);
    }
  });
});
