import { describe, expect, it } from "vitest";
import { z } from "zod";
import { ClientMessage } from "./client.js";
import { parseRunnerMessage, RunnerMessage } from "./runner.js";
import { isPayload, Payload } from "./shared.js";

const bytes = new Uint8Array([1, 2, 3]);
const hash = "a".repeat(64);

describe("hand-written checks agree with the schemas", () => {
  const runnerSamples: unknown[] = [
    { t: "ready" },
    { t: "ready", phases: { load: 120, enter: 0 } },
    { t: "ready", phases: {} },
    { t: "ready", phases: { load: 1.5 } },
    { t: "ready", phases: { load: -1 } },
    { t: "ready", phases: { load: "120" } },
    { t: "ready", phases: [120] },
    { t: "ready", phases: null },
    { t: "init-failed", error: bytes },
    { t: "init-failed", error: "text" },
    { t: "next", max: 3 },
    { t: "next", max: 0 },
    { t: "next", max: 1.5 },
    { t: "next" },
    { t: "output", inputId: "7", attempt: 1, status: "success", retryable: true, data: bytes },
    { t: "output", inputId: "7", attempt: 2, status: "failure", retryable: false, data: bytes },
    { t: "output", inputId: 7, attempt: 1, status: "success", retryable: true, data: bytes },
    { t: "output", inputId: "7", attempt: "1", status: "success", retryable: true, data: bytes },
    { t: "output", inputId: "7", attempt: 1, status: "done", retryable: true, data: bytes },
    { t: "output", inputId: "7", attempt: 1, status: "success", retryable: 1, data: bytes },
    { t: "output", inputId: "7", attempt: 1, status: "success", retryable: true, data: [1, 2] },
    { t: "output", inputId: "7", attempt: 1, status: "success", retryable: true, data: { blob: "ab".repeat(32) } },
    { t: "output", inputId: "7", attempt: 1, status: "success", retryable: true, data: { blob: "../etc/passwd" } },
    { t: "output", inputId: "7", attempt: 1, status: "success", retryable: true, data: { blob: 7 } },
    { t: "output", inputId: "7", attempt: 1, status: "success", retryable: true },
    { t: "item", inputId: "7", attempt: 1, index: 0, data: bytes },
    { t: "item", inputId: "7", attempt: 1, index: 3, data: { blob: "ab".repeat(32) } },
    { t: "item", inputId: "7", attempt: 1, index: -1, data: bytes },
    { t: "item", inputId: "7", attempt: 1, index: 1.5, data: bytes },
    { t: "item", inputId: "7", attempt: 1, data: bytes },
    { t: "item", inputId: "7", attempt: 1, index: 0, data: "x" },
    { t: "volume", rid: 0, op: "commit", name: "models" },
    { t: "volume", rid: 3, op: "reload", name: "m" },
    { t: "volume", rid: -1, op: "commit", name: "models" },
    { t: "volume", rid: 1, op: "delete", name: "models" },
    { t: "volume", rid: 1, op: "commit", name: "" },
    { t: "volume", rid: 1, op: "commit" },
    { t: "shutdown" },
    {},
    null,
    "ready",
    [],
  ];

  it("parseRunnerMessage accepts exactly what RunnerMessage accepts, and returns the same message", () => {
    for (const sample of runnerSamples) {
      const parsed = RunnerMessage.safeParse(sample);
      expect(parseRunnerMessage(sample), JSON.stringify(sample)).toEqual(parsed.success ? parsed.data : undefined);
    }
  });

  it("isPayload accepts exactly what Payload accepts", () => {
    const samples: unknown[] = [
      { inline: bytes },
      { inline: "x" },
      { blob: hash },
      { blob: "A".repeat(64) },
      { blob: "a".repeat(63) },
      { blob: 1 },
      {},
      null,
      bytes,
    ];
    for (const sample of samples) expect(isPayload(sample), String(sample)).toBe(Payload.safeParse(sample).success);
  });

  it("a submit's inputs are checked as the plain schema would check them", () => {
    const plain = z.array(z.object({ idx: z.number().int().min(0), args: Payload }));
    const submit = (inputs: unknown) => ({
      t: "submit",
      rid: 1,
      functionId: "fn",
      callId: "3b241101-e2bb-4255-8caf-4136c566a962",
      total: 1,
      subscribe: true,
      inputs,
    });
    const samples: unknown[] = [
      [
        { idx: 0, args: { inline: bytes } },
        { idx: 1, args: { blob: hash } },
      ],
      [],
      [{ idx: -1, args: { inline: bytes } }],
      [{ idx: 0.5, args: { inline: bytes } }],
      [{ idx: 0 }],
      [{ idx: 0, args: { blob: "nope" } }],
      [null],
      "inputs",
      { 0: { idx: 0, args: { inline: bytes } } },
    ];
    for (const sample of samples) {
      expect(ClientMessage.safeParse(submit(sample)).success, JSON.stringify(sample)).toBe(
        plain.safeParse(sample).success,
      );
    }
    const refused = ClientMessage.safeParse(submit([{ idx: -1, args: { inline: bytes } }]));
    expect(refused.error?.issues[0]?.message).toMatch(/inputs must be a list of/);
  });
});
