import { randomUUID } from "node:crypto";
import {
  type ClaimedInput,
  decodeMessage,
  encodeMessage,
  type FunctionSpec,
  type GeneratorItem,
  type Result,
  type WorkerOutput,
} from "@skiff/protocol";
import { LOCAL_WORKSPACE, openPglite, Store } from "@skiff/store";
import pino from "pino";
import { afterEach, describe, expect, it, vi } from "vitest";
import { ControlPlane } from "./control-plane.js";
import type { Subscriber } from "./hub.js";
import { CALLER_RETURN_MS } from "./systems/calls.js";
import { fakeWorker, placeContainer, testSpec } from "./test-spec.js";
import type { WorkerConn } from "./workers.js";

const RETRIES = { maxRetries: 2, initialDelayMs: 0, backoffCoefficient: 1, maxDelayMs: 0 };
const value = (v: unknown) => ({ inline: encodeMessage(v) });
const decoded = (payload: Result["data"]) => ("inline" in payload ? decodeMessage(payload.inline) : undefined);
const caller = { workspace: LOCAL_WORKSPACE };

/**
 * Generator calls in the engine: their values go to the caller in order and are never stored or replayed;
 * a generator that yielded is not run again; its caller's acknowledgements reach its container as credit.
 */
describe("control plane: generator calls", () => {
  let store: Store;
  let control: ControlPlane;
  let functionId: string;

  async function setup(spec: Partial<FunctionSpec>) {
    store = new Store(await openPglite());
    await store.migrate();
    const { functions } = await store.apps.create({
      workspace: LOCAL_WORKSPACE,
      name: "t",
      env: "main",
      mode: "ephemeral",
      bundleHash: "h",
      functions: [testSpec({ maxContainers: 0, generator: true, retries: RETRIES, ...spec })],
    });
    functionId = functions[0]!.id;
    control = new ControlPlane({ store, log: pino({ level: "silent" }) });
    await control.start();
    const { worker, sent } = fakeWorker();
    await control.workerConnected(worker, "process", [], []);
    placeContainer(control, worker, {
      id: "c1",
      functionId,
      cpu: 1,
      memoryMiB: 512,
      state: "running",
      version: 1,
      stopping: false,
    });
    const claimOne = async (): Promise<ClaimedInput> => {
      await control.workerMessage(worker, { t: "claim", rid: 1, containerId: "c1", max: 1 });
      const input = sent.flatMap((m) => (m.t === "inputs" ? m.inputs : []))[0];
      sent.splice(0, sent.length, ...sent.filter((m) => m.t !== "inputs"));
      if (!input) throw new Error("no input was handed out");
      return input;
    };
    return { worker, sent, claimOne };
  }

  afterEach(async () => {
    await control.stop();
    await store.close();
  });

  function subscriber() {
    const results: Result[] = [];
    const items: GeneratorItem[] = [];
    const sub: Subscriber = {
      pushResults: (_callId, r) => results.push(...r),
      pushItems: (_callId, i) => items.push(...i),
      pushLogs: () => {},
      endLogs: () => {},
    };
    return { results, items, sub };
  }

  const submit = (callId: string, sub: Subscriber | undefined, gen = true) =>
    control.submit(
      {
        t: "submit",
        rid: 1,
        functionId,
        callId,
        total: 1,
        subscribe: Boolean(sub),
        resent: false,
        ...(gen ? { gen } : {}),
        inputs: [{ idx: 0, args: value([]) }],
      },
      sub,
      caller,
    );

  const items = (worker: WorkerConn, input: ClaimedInput, values: unknown[], from = 0, attempt = input.attempt) =>
    control.workerMessage(worker, {
      t: "items",
      items: values.map((v, i) => ({ inputId: input.inputId, attempt, index: from + i, data: value(v) })),
    });

  const output = (
    worker: WorkerConn,
    input: ClaimedInput,
    status: "success" | "failure",
    data: unknown,
    infra = false,
  ) =>
    control.workerMessage(worker, {
      t: "outputs",
      seq: 1,
      outputs: [
        {
          inputId: input.inputId,
          attempt: input.attempt,
          status,
          retryable: true,
          infra,
          data: value(data),
        } satisfies WorkerOutput,
      ],
    });

  it("refuses a plain call of a generator and a generator call of a plain function, naming the other way", async () => {
    await setup({});
    await expect(submit(randomUUID(), undefined, false)).rejects.toThrow(
      /t\.f is an async generator function: iterate its values with `for await .*remoteGen/,
    );
    // What .map, .starmap or .forEach sends where the SDK could not tell the function is a generator.
    const many = [0, 1, 2].map((idx) => ({ idx, args: value([idx]) }));
    await expect(
      control.submit(
        {
          t: "submit",
          rid: 1,
          functionId,
          callId: randomUUID(),
          total: 3,
          subscribe: false,
          resent: false,
          inputs: many,
        },
        undefined,
        caller,
      ),
    ).rejects.toThrow(/\.remote, \.spawn, \.map, \.starmap and \.forEach are for plain functions/);
    await control.stop();
    await store.close();
    await setup({ generator: undefined });
    await expect(submit(randomUUID(), undefined, true)).rejects.toThrow(
      /t\.f is not an async generator function: call it with \.remote/,
    );
  });

  it("hands the runner a generator input, pushes its values in order once each, then its result", async () => {
    const { worker, claimOne } = await setup({});
    const { results, items: got, sub } = subscriber();
    await submit(randomUUID(), sub);
    const input = await claimOne();
    expect(input.gen).toBe(true);
    await items(worker, input, ["a", "b"]);
    await items(worker, input, ["b"], 1); // sent again: dropped
    await items(worker, input, ["x"], 0, input.attempt + 1); // another attempt's: dropped
    await items(worker, input, ["c"], 2);
    expect(got.map((item) => [item.index, decoded(item.data)])).toEqual([
      [0, "a"],
      [1, "b"],
      [2, "c"],
    ]);
    expect(results).toEqual([]);
    await output(worker, input, "success", 3);
    expect(results.map((r) => [r.status, decoded(r.data)])).toEqual([["success", 3]]);
  });

  it("fails a generator whose values did not all arrive, rather than ending it short", async () => {
    const { worker, claimOne } = await setup({});
    const { results, items: got, sub } = subscriber();
    await submit(randomUUID(), sub);
    const input = await claimOne();
    await items(worker, input, ["a"]);
    await items(worker, input, ["c"], 2); // value 1 never came
    await output(worker, input, "success", 3);
    expect(got).toHaveLength(1);
    expect(results.map((r) => [r.status, r.code])).toEqual([["failure", "UNAVAILABLE"]]);
    expect(decoded(results[0]!.data)).toMatchObject({ message: expect.stringMatching(/did not all reach the server/) });
  });

  it("retries a generator that failed before it yielded, never one that yielded", async () => {
    const { worker, claimOne } = await setup({});
    const { results, sub } = subscriber();
    await submit(randomUUID(), sub);
    const first = await claimOne();
    await output(worker, first, "failure", "early");
    expect(results).toEqual([]);
    control.tick(); // the retry's backoff (0 ms) is over
    const second = await claimOne();
    expect(second).toMatchObject({ inputId: first.inputId, attempt: 2 });
    await items(worker, second, ["a"]);
    await output(worker, second, "failure", "late");
    expect(results.map((r) => [r.status, r.code, decoded(r.data)])).toEqual([["failure", "USER_ERROR", "late"]]);
  });

  it("fails a generator whose container was lost after it yielded, instead of running it again", async () => {
    const { worker, claimOne } = await setup({});
    const { results, sub } = subscriber();
    await submit(randomUUID(), sub);
    const input = await claimOne();
    await items(worker, input, ["a", "b"]);
    await output(worker, input, "failure", "", true);
    expect(results.map((r) => [r.status, r.code])).toEqual([["failure", "CONTAINER_CRASHED"]]);
    expect(decoded(results[0]!.data)).toMatchObject({
      message: expect.stringMatching(/after the generator yielded 2 value\(s\); a generator is not run again/),
    });
  });

  it("passes the caller's acknowledgements to the container running the generator as credit", async () => {
    const { sent, claimOne } = await setup({});
    const callId = randomUUID();
    await submit(callId, subscriber().sub);
    const input = await claimOne();
    await control.generatorTaken(caller, callId, 8);
    expect(sent.filter((m) => m.t === "credit")).toEqual([
      { t: "credit", credits: [{ inputId: input.inputId, attempt: input.attempt, consumed: 8 }] },
    ]);
    await expect(control.generatorTaken({ workspace: "someone-else" }, callId, 8)).rejects.toThrow(/no call/);
  });

  it("fails a generator call reloaded after a restart (no longer known as one) once its values come, and stops it", async () => {
    const { worker, sent, claimOne } = await setup({ generator: undefined });
    const { results, items: got, sub } = subscriber();
    await submit(randomUUID(), sub, false); // as reloaded: the flag of a generator call is not stored
    const input = await claimOne();
    await items(worker, input, ["a"]);
    expect(got).toEqual([]);
    expect(results.map((r) => [r.status, r.code])).toEqual([["failure", "UNAVAILABLE"]]);
    expect(decoded(results[0]!.data)).toMatchObject({
      message: expect.stringMatching(/server restarted while the generator ran/),
    });
    expect(sent.filter((m) => m.t === "cancel")).toEqual([
      { t: "cancel", inputs: [{ inputId: input.inputId, attempt: input.attempt }] },
    ]);
  });

  it("cancels a generator call whose caller went away and did not come back within a minute", async () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout"] });
    try {
      const { sent, claimOne } = await setup({});
      const gone = subscriber();
      const back = subscriber();
      const callId = randomUUID();
      await submit(callId, gone.sub);
      const input = await claimOne();
      control.removeSubscriber(gone.sub);
      vi.advanceTimersByTime(CALLER_RETURN_MS / 2);
      await control.subscribe(caller, callId, 0, back.sub); // it reconnected in time
      vi.advanceTimersByTime(CALLER_RETURN_MS);
      expect(sent.filter((m) => m.t === "cancel")).toEqual([]);
      control.removeSubscriber(back.sub); // and went away for good
      vi.advanceTimersByTime(CALLER_RETURN_MS - 1);
      expect(sent.filter((m) => m.t === "cancel")).toEqual([]);
      vi.advanceTimersByTime(1);
      expect(sent.filter((m) => m.t === "cancel")).toEqual([
        { t: "cancel", inputs: [{ inputId: input.inputId, attempt: input.attempt }] },
      ]);
    } finally {
      // Writes behind that were timed under the fake clock.
      await vi.advanceTimersByTimeAsync(1000);
      vi.useRealTimers();
    }
  });
});
