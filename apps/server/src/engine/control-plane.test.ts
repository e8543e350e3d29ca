import { randomUUID } from "node:crypto";
import {
  type ClaimedInput,
  type FunctionSpec,
  INFRA_RETRIES,
  LEASE_MS,
  type Result,
  type ServerToWorker,
  type WorkerOutput,
} from "@skiff/protocol";
import { LOCAL_WORKSPACE, openPglite, Store } from "@skiff/store";
import pino from "pino";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { ControlPlane } from "./control-plane.js";
import type { Subscriber } from "./hub.js";
import { placeContainer, testSpec } from "./test-spec.js";
import type { WorkerConn } from "./workers.js";

const bytes = (text: string) => ({ inline: new TextEncoder().encode(text) });
const text = (payload: Result["data"]) => ("inline" in payload ? new TextDecoder().decode(payload.inline) : "");

function spec(overrides: Partial<FunctionSpec> = {}): FunctionSpec {
  return testSpec({ maxContainers: 0, ...overrides }); // no autoscaling: the tests play the containers
}

/** A worker that records what the server sends it, with one container per id asked for. */
function fakeWorker(functionId: string, containers: string[]) {
  const sent: ServerToWorker[] = [];
  const worker: WorkerConn = {
    id: "wk-test",
    name: "test",
    capacity: { cpu: 8, memoryMiB: 8192 },
    containers: new Map(
      containers.map((id) => [
        id,
        { id, functionId, cpu: 1, memoryMiB: 512, state: "running" as const, version: 1, stopping: false },
      ]),
    ),
    send: (message) => sent.push(message),
  };
  /** The inputs answered to claims so far, and forgets them. */
  const inputs = (): ClaimedInput[] => {
    const out = sent.flatMap((m) => (m.t === "inputs" ? m.inputs : []));
    sent.splice(0, sent.length, ...sent.filter((m) => m.t !== "inputs"));
    return out;
  };
  return { worker, sent, inputs };
}

function subscriber() {
  const results: Result[] = [];
  const sub: Subscriber = { pushResults: (_callId, r) => results.push(...r), pushLogs: () => {}, endLogs: () => {} };
  return { results, sub };
}

const tick = () => new Promise((resolve) => setTimeout(resolve, 20));

describe("control plane", () => {
  let store: Store;
  let control: ControlPlane;
  let functionId: string;

  async function setup(fnSpec: FunctionSpec) {
    store = new Store(await openPglite());
    await store.migrate();
    const { functions } = await store.apps.create({
      workspace: LOCAL_WORKSPACE,
      name: "t",
      env: "main",
      mode: "ephemeral",
      bundleHash: "h",
      functions: [fnSpec],
    });
    functionId = functions[0]!.id;
    control = new ControlPlane({ store, log: pino({ level: "silent" }) });
    await control.start();
  }

  beforeEach(() => setup(spec()));
  afterEach(async () => {
    await control.stop();
    await store.close();
  });

  async function connect(containers = ["c1"]) {
    const fake = fakeWorker(functionId, containers);
    await control.workerConnected(fake.worker, "process", [], []);
    for (const id of containers) {
      placeContainer(control, fake.worker, {
        id,
        functionId,
        cpu: 1,
        memoryMiB: 512,
        state: "running",
        version: 1,
        stopping: false,
      });
    }
    return fake;
  }

  const claim = (worker: WorkerConn, containerId = "c1", max = 1) =>
    control.workerMessage(worker, { t: "claim", rid: Math.floor(Math.random() * 1e9), containerId, max });

  const submit = (callId: string, args: string[], sub?: Subscriber, resent = false) =>
    control.submit(
      {
        t: "submit",
        rid: 1,
        functionId,
        callId,
        total: args.length,
        subscribe: Boolean(sub),
        resent,
        inputs: args.map((a, idx) => ({ idx, args: bytes(a) })),
      },
      sub,
      { workspace: LOCAL_WORKSPACE },
    );

  const output = (input: ClaimedInput, status: "success" | "failure", data: string, more: Partial<WorkerOutput> = {}) =>
    ({
      inputId: input.inputId,
      attempt: input.attempt,
      status,
      retryable: true,
      infra: false,
      data: bytes(data),
      ...more,
    }) satisfies WorkerOutput;

  const report = (worker: WorkerConn, outputs: WorkerOutput[]) =>
    control.workerMessage(worker, { t: "outputs", seq: 1, outputs });

  it("hands a submitted input to a waiting container and pushes its result before it is recorded", async () => {
    const { worker, inputs, sent } = await connect();
    await claim(worker); // parks: nothing queued yet
    const { results, sub } = subscriber();
    const callId = randomUUID();
    await submit(callId, ["a"], sub);
    const [input] = inputs();
    expect(input).toMatchObject({ attempt: 1 });
    await report(worker, [output(input!, "success", "A")]);
    expect(results.map((r) => [r.idx, r.status, text(r.data)])).toEqual([[0, "success", "A"]]);
    await tick();
    expect(sent.some((m) => m.t === "outputs-recorded")).toBe(true);
    expect((await store.calls.results(callId)).map((r) => text(r.data))).toEqual(["A"]);
  });

  it("keeps the first success and ignores a failure from an attempt that no longer holds the input", async () => {
    const { worker, inputs } = await connect(["c1", "c2"]);
    const callId = randomUUID();
    const { results, sub } = subscriber();
    await submit(callId, ["a"], sub);
    await claim(worker, "c1");
    const [first] = inputs();
    // c1 is lost: the input goes back to the queue and c2 runs attempt 2.
    await control.workerMessage(worker, { t: "stopped", containerId: "c1", reason: "crashed", inFlight: [first!] });
    await claim(worker, "c2");
    const [second] = inputs();
    expect(second).toMatchObject({ inputId: first!.inputId, attempt: 2 });
    await report(worker, [output(first!, "failure", "stale")]);
    expect(results).toEqual([]);
    await report(worker, [output(second!, "success", "won")]);
    await report(worker, [output(second!, "success", "late")]);
    expect(results.map((r) => text(r.data))).toEqual(["won"]);
  });

  it("retries user failures within the policy, never a non-retriable one", async () => {
    await control.stop();
    await store.close();
    await setup(spec({ retries: { maxRetries: 1, initialDelayMs: 0, backoffCoefficient: 2, maxDelayMs: 10 } }));
    const { worker, inputs } = await connect();
    const { results, sub } = subscriber();
    await submit(randomUUID(), ["a", "b"], sub);
    await claim(worker, "c1", 2);
    const [a, b] = inputs();
    await report(worker, [output(a!, "failure", "boom"), output(b!, "failure", "fatal", { retryable: false })]);
    expect(results.map((r) => [r.idx, r.status, r.code])).toEqual([[1, "failure", "USER_ERROR"]]);
    control.tick(); // the retry's backoff (0 ms) is over
    await claim(worker, "c1");
    const [again] = inputs();
    expect(again).toMatchObject({ inputId: a!.inputId, attempt: 2 });
    await report(worker, [output(again!, "failure", "boom again")]);
    expect(results.map((r) => [r.idx, text(r.data)])).toEqual([
      [1, "fatal"],
      [0, "boom again"],
    ]);
  });

  it("requeues lost attempts outside the user's budget, and fails the input past the infra budget", async () => {
    const { worker, inputs } = await connect();
    const { results, sub } = subscriber();
    await submit(randomUUID(), ["a"], sub);
    for (let loss = 0; loss <= INFRA_RETRIES; loss++) {
      await claim(worker);
      const [input] = inputs();
      expect(input?.attempt).toBe(loss + 1);
      await report(worker, [output(input!, "failure", "", { infra: true })]);
    }
    expect(results.map((r) => [r.status, r.code])).toEqual([["failure", "CONTAINER_CRASHED"]]);
  });

  it("cancels a call: its inputs fail with CANCELLED and running attempts are killed", async () => {
    const { worker, inputs, sent } = await connect();
    const { results, sub } = subscriber();
    const callId = randomUUID();
    await submit(callId, ["a", "b"], sub);
    await claim(worker);
    const [running] = inputs();
    await control.cancel({ workspace: LOCAL_WORKSPACE }, callId);
    expect(results.map((r) => [r.idx, r.code])).toEqual([
      [0, "CANCELLED"],
      [1, "CANCELLED"],
    ]);
    expect(sent).toContainEqual({ t: "cancel", inputs: [{ inputId: running!.inputId, attempt: 1 }] });
    expect((await store.calls.results(callId)).map((r) => r.code)).toEqual(["CANCELLED", "CANCELLED"]);
  });

  it("ends a stopped app's logs once its last container reports stopped, after the lines it sent", async () => {
    const { worker, sent } = await connect(["c1", "c2"]);
    const appId = (await store.apps.getFunction(functionId))!.app.id;
    const got: string[] = [];
    await control.subscribeLogs(LOCAL_WORKSPACE, appId, {
      pushResults: () => {},
      pushLogs: (lines) => got.push(...lines.map((l) => l.line)),
      endLogs: () => got.push("end"),
    });
    await control.stopApp(appId);
    expect(sent.filter((m) => m.t === "stop").map((m) => m.t === "stop" && m.containerId)).toEqual(["c1", "c2"]);
    const line = (containerId: string, text: string, seq: number) => ({
      ts: Date.now(),
      appId,
      functionName: "f",
      containerId,
      stream: "stdout" as const,
      line: text,
      seq,
    });
    await control.workerMessage(worker, { t: "logs", lines: [line("c1", "last of c1", 1)] });
    await control.workerMessage(worker, { t: "stopped", containerId: "c1", reason: "requested", inFlight: [] });
    expect(got).toEqual(["last of c1"]);
    await control.workerMessage(worker, { t: "logs", lines: [line("c2", "last of c2", 1)] });
    await control.workerMessage(worker, { t: "stopped", containerId: "c2", reason: "requested", inFlight: [] });
    expect(got).toEqual(["last of c1", "last of c2", "end"]);
  });

  it("drops a resent chunk it already has, and checks the store for one sent before a restart", async () => {
    const { worker, inputs } = await connect();
    const callId = randomUUID();
    await submit(callId, ["a"]);
    await submit(callId, ["a"], undefined, true);
    await claim(worker, "c1", 5);
    const [only, ...rest] = inputs();
    expect(rest).toEqual([]);
    await report(worker, [output(only!, "success", "A")]);
    await tick();

    // A new engine on the same store has never seen the call: the resend must not run it again.
    await control.stop();
    control = new ControlPlane({ store, log: pino({ level: "silent" }) });
    await control.start();
    const again = await connect();
    await submit(callId, ["a"], undefined, true);
    await claim(again.worker, "c1", 5);
    expect(again.inputs()).toEqual([]);
  });

  it("after a restart, holds unfinished inputs until the worker says which it still runs", async () => {
    await store.db.query(
      "INSERT INTO workers (id, name, runtime, capacity) VALUES ('wk-test', 'test', 'process', '{}')",
    );
    const { worker, inputs } = await connect();
    const callId = randomUUID();
    await submit(callId, ["a", "b"]);
    await claim(worker);
    const [running] = inputs();
    await tick();

    await control.stop();
    control = new ControlPlane({ store, log: pino({ level: "silent" }) });
    await control.start();
    expect(control.inputs.held()).toHaveLength(2);
    const fake = fakeWorker(functionId, []);
    await store.fleet.addContainer({
      id: "c1",
      workerId: "wk-test",
      functionId,
      version: 1,
      workspace: LOCAL_WORKSPACE,
      appId: "app-1",
      env: "main",
    });
    await control.workerConnected(fake.worker, "process", ["c1"], [{ ...running!, containerId: "c1" }]);
    expect(control.inputs.held()).toEqual([]);
    expect(control.inputs.get(running!.inputId)).toMatchObject({ state: "running", owner: "c1", attempt: 1 });
    await claim(fake.worker);
    expect(fake.inputs().map((i) => i.inputId)).not.toContain(running!.inputId);
    const { results, sub } = subscriber();
    await control.subscribe({ workspace: LOCAL_WORKSPACE }, callId, 0, sub);
    await report(fake.worker, [output(running!, "success", "survived")]);
    expect(results.map((r) => text(r.data))).toEqual(["survived"]);
  });

  it("after a restart, runs the inputs of a worker that then restarts without them before the backlog", async () => {
    await store.db.query(
      "INSERT INTO workers (id, name, runtime, capacity) VALUES ('wk-test', 'test', 'process', '{}')",
    );
    const { worker, inputs } = await connect();
    await submit(randomUUID(), ["a", "b", "c"]);
    await claim(worker);
    const [running] = inputs();
    await tick();

    await control.stop();
    control = new ControlPlane({ store, log: pino({ level: "silent" }) });
    await control.start();
    await store.fleet.addContainer({
      id: "c1",
      workerId: "wk-test",
      functionId,
      version: 1,
      workspace: LOCAL_WORKSPACE,
      appId: "app-1",
      env: "main",
    });
    const before = fakeWorker(functionId, []);
    await control.workerConnected(before.worker, "process", ["c1"], [{ ...running!, containerId: "c1" }]);
    await control.workerDisconnected(before.worker);

    // Back without c1 and without the input it ran: lost at once, and first in line.
    const after = await connect(["c2"]);
    await claim(after.worker, "c2", 1);
    expect(after.inputs().map((i) => [i.inputId, i.attempt])).toEqual([[running!.inputId, 2]]);
  });

  it("expires no lease on a tick that comes late, before the heartbeats that came meanwhile are read", async () => {
    const { worker, inputs } = await connect();
    await submit(randomUUID(), ["a"]);
    await claim(worker);
    const [input] = inputs();
    const ref = { inputId: input!.inputId, attempt: input!.attempt };
    const start = Date.now();
    const clock = vi.spyOn(Date, "now");
    try {
      // The server could not run for longer than a lease; the worker heartbeated all along.
      clock.mockReturnValue(start + LEASE_MS + 5_000);
      control.tick();
      expect(control.inputs.get(ref.inputId)?.state).toBe("running");
      await control.workerMessage(worker, { t: "heartbeat", inputs: [ref] });
      clock.mockReturnValue(start + LEASE_MS + 6_000);
      control.tick();
      expect(control.inputs.get(ref.inputId)?.state).toBe("running");

      // A worker that stopped answering still loses the input at the first tick on time.
      clock.mockReturnValue(start + 3 * LEASE_MS);
      control.tick();
      expect(control.inputs.get(ref.inputId)?.state).toBe("running");
      clock.mockReturnValue(start + 3 * LEASE_MS + 1_000);
      control.tick();
      expect(control.inputs.get(ref.inputId)?.state).toBe("pending");
    } finally {
      clock.mockRestore();
    }
  });
});
