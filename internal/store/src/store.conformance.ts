import { randomUUID } from "node:crypto";
import type { FunctionSpec, RetryPolicy } from "@skiff/protocol";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { INPUT_ID_BLOCK, type WriteBatch } from "./calls.js";
import type { Db } from "./db.js";
import { LOCAL_WORKSPACE } from "./secrets.js";
import { Store } from "./store.js";
import { volumeConformance } from "./volumes.conformance.js";

const NO_RETRY: RetryPolicy = { maxRetries: 0, initialDelayMs: 0, backoffCoefficient: 1, maxDelayMs: 0 };
const bytes = (text: string) => ({ inline: new TextEncoder().encode(text) });
const text = (payload: { inline: Uint8Array } | { blob: string }) =>
  "inline" in payload ? new TextDecoder().decode(payload.inline) : `blob:${payload.blob}`;

export function spec(name: string): FunctionSpec {
  return {
    name,
    kind: "function",
    timeoutMs: 30_000,
    retries: NO_RETRY,
    cpu: 1,
    memoryMiB: 512,
    image: { base: "debian-bookworm", nodeMajor: 20, layers: [], mounts: [] },
    minContainers: 0,
    maxContainers: 10,
    bufferContainers: 0,
    scaledownWindowMs: 60_000,
    maxInputs: 1,
    startupTimeoutMs: 60_000,
    secrets: [],
    volumes: [],
  };
}

/** One suite every Db driver must pass: the store's semantics do not depend on the driver. */
export function describeStoreConformance(name: string, open: () => Promise<{ db: Db; dispose: () => Promise<void> }>) {
  describe(`store on ${name}`, () => {
    let store: Store;
    let dispose: () => Promise<void>;
    let functionId: string;

    beforeAll(async () => {
      const opened = await open();
      dispose = opened.dispose;
      store = new Store(opened.db);
      await store.migrate();
      await store.migrate(); // idempotent
      const { functions } = await store.apps.create({
        workspace: LOCAL_WORKSPACE,
        name: "t",
        env: "main",
        mode: "ephemeral",
        bundleHash: "h",
        functions: [spec("f")],
      });
      functionId = functions[0]!.id;
    });
    afterAll(async () => {
      await store.close();
      await dispose();
    });

    const empty = (): WriteBatch => ({ chunks: [], results: [], progress: [], finishedCalls: [] });

    /** Writes a call of `n` inputs in chunks of up to INPUT_ID_BLOCK; returns its id and input ids. */
    async function submit(n: number, callId = randomUUID()) {
      const ids: string[] = [];
      for (let firstIdx = 0; firstIdx < n; firstIdx += INPUT_ID_BLOCK) {
        const count = Math.min(INPUT_ID_BLOCK, n - firstIdx);
        const firstId = await store.calls.reserveInputIds();
        const args = Array.from({ length: count }, (_, i) => bytes(`in${firstIdx + i}`));
        await store.calls.persist({ ...empty(), chunks: [{ callId, functionId, firstIdx, firstId, args }] });
        for (let i = 0; i < count; i++) ids.push(String(firstId + i));
      }
      return { callId, ids };
    }

    const result = (
      callId: string,
      inputId: string,
      idx: number,
      data: string,
      status: "success" | "failure" = "success",
    ) => ({
      inputId,
      callId,
      idx,
      attempt: 1,
      userFailures: 0,
      infraFailures: 0,
      status,
      data: bytes(data),
    });

    it("reserves input ids in blocks that never overlap", async () => {
      const a = await store.calls.reserveInputIds();
      const b = await store.calls.reserveInputIds();
      expect(Math.abs(b - a)).toBeGreaterThanOrEqual(INPUT_ID_BLOCK);
    });

    it("writes each chunk of a call once, and tells which chunks were new", async () => {
      const callId = randomUUID();
      const firstId = await store.calls.reserveInputIds();
      const chunk = { callId, functionId, firstIdx: 0, firstId, args: [bytes("a"), bytes("b")] };
      expect(await store.calls.persist({ ...empty(), chunks: [chunk] })).toEqual([{ callId, firstIdx: 0 }]);
      expect(await store.calls.persist({ ...empty(), chunks: [chunk] })).toEqual([]);
      expect(await store.calls.get(callId)).toEqual({ callId, functionId });
      expect(await store.calls.get(randomUUID())).toBeUndefined();
      const unfinished = (await store.calls.unfinishedInputs()).filter((input) => input.callId === callId);
      expect(unfinished.map((input) => [input.idx, input.inputId, text(input.args)])).toEqual([
        [0, String(firstId), "a"],
        [1, String(firstId + 1), "b"],
      ]);
    });

    it("returns results in index order from an index on; the first result of an input wins", async () => {
      const { callId, ids } = await submit(3);
      await store.calls.persist({
        ...empty(),
        results: [result(callId, ids[2]!, 2, "two"), result(callId, ids[0]!, 0, "zero")],
      });
      await store.calls.persist({
        ...empty(),
        results: [result(callId, ids[0]!, 0, "again"), result(callId, ids[1]!, 1, "one", "failure")],
      });
      const all = await store.calls.results(callId);
      expect(all.map((r) => [r.idx, r.status, text(r.data)])).toEqual([
        [0, "success", "zero"],
        [1, "failure", "one"],
        [2, "success", "two"],
      ]);
      expect((await store.calls.results(callId, 2)).map((r) => r.idx)).toEqual([2]);
    });

    it("reloads unfinished inputs with their retry counts, and skips finished calls", async () => {
      const { callId, ids } = await submit(3);
      await store.calls.persist({
        ...empty(),
        results: [result(callId, ids[0]!, 0, "done")],
        progress: [
          { inputId: ids[1]!, attempt: 3, userFailures: 1, infraFailures: 1, runAfterMs: 1000 },
          { inputId: ids[1]!, attempt: 4, userFailures: 2, infraFailures: 1, runAfterMs: 1234.5 },
        ],
      });
      const mine = (await store.calls.unfinishedInputs()).filter((input) => input.callId === callId);
      expect(mine.map((i) => [i.idx, i.attempt, i.userFailures, i.infraFailures, i.runAfterMs])).toEqual([
        [1, 4, 2, 1, 1234.5],
        [2, 0, 0, 0, 0],
      ]);
      await store.calls.persist({
        ...empty(),
        results: [result(callId, ids[1]!, 1, "x"), result(callId, ids[2]!, 2, "y")],
        finishedCalls: [callId],
      });
      expect((await store.calls.unfinishedInputs()).some((input) => input.callId === callId)).toBe(false);
    });

    it("writes chunks, results, progress and finished calls of several calls in one batch", async () => {
      const done = await submit(1);
      const callId = randomUUID();
      const firstId = await store.calls.reserveInputIds();
      const chunk = { callId, functionId, firstIdx: 0, firstId, args: [bytes("p")] };
      await store.calls.persist({
        chunks: [chunk, { ...chunk, firstIdx: 1, firstId: firstId + 1 }],
        results: [result(done.callId, done.ids[0]!, 0, "r"), result(callId, String(firstId), 0, "s")],
        progress: [{ inputId: String(firstId + 1), attempt: 1, userFailures: 1, infraFailures: 0, runAfterMs: 0 }],
        finishedCalls: [done.callId, callId],
      });
      expect((await store.calls.results(done.callId)).map((r) => text(r.data))).toEqual(["r"]);
      expect((await store.calls.results(callId)).map((r) => text(r.data))).toEqual(["s"]);
    });

    it("handles a large map in batched statements", async () => {
      const { callId, ids } = await submit(2500);
      const progress = ids.map((inputId) => ({
        inputId,
        attempt: 1,
        userFailures: 0,
        infraFailures: 1,
        runAfterMs: 0,
      }));
      await store.calls.persist({ ...empty(), progress });
      const mine = (await store.calls.unfinishedInputs()).filter((input) => input.callId === callId);
      expect(mine).toHaveLength(2500);
      expect(mine.every((input) => input.infraFailures === 1)).toBe(true);
      expect([mine[0]!.idx, text(mine[2499]!.args)]).toEqual([0, "in2499"]);
      await store.calls.persist({ ...empty(), results: ids.map((id, idx) => result(callId, id, idx, `out${idx}`)) });
      const results = await store.calls.results(callId);
      expect(results).toHaveLength(2500);
      expect(text(results[2499]!.data)).toBe("out2499");
    });

    it("deploys versions by name, keeping function ids, and finds the current functions", async () => {
      const first = await store.apps.deploy({
        workspace: LOCAL_WORKSPACE,
        name: "svc",
        env: "main",
        bundleHash: "b1",
        functions: [spec("a"), spec("b")],
      });
      expect(first.previous).toBeUndefined();
      expect(first.app).toMatchObject({ mode: "deployed", version: 1, bundleHash: "b1" });
      const second = await store.apps.deploy({
        workspace: LOCAL_WORKSPACE,
        name: "svc",
        env: "main",
        bundleHash: "b2",
        functions: [spec("a")],
      });
      expect(second.previous).toBe(1);
      expect(second.app).toMatchObject({ id: first.app.id, version: 2, bundleHash: "b2" });
      expect(second.functions[0]!.id).toBe(first.functions[0]!.id);
      expect((await store.apps.findFunction({ workspace: LOCAL_WORKSPACE, env: "main" }, "svc", "a"))?.id).toBe(
        first.functions[0]!.id,
      );
      expect(await store.apps.findFunction({ workspace: LOCAL_WORKSPACE, env: "main" }, "svc", "b")).toBeUndefined();
      // What an error names instead: the functions of the version that runs now.
      expect(await store.apps.functionNamesOf({ workspace: LOCAL_WORKSPACE, env: "main" }, "svc")).toEqual(["a"]);
      expect(await store.apps.functionNamesOf({ workspace: LOCAL_WORKSPACE, env: "main" }, "nosuch")).toEqual([]);
      const removed = await store.apps.getFunction(first.functions[1]!.id);
      expect(removed?.version).toBe(1);
      expect(removed?.app.version).toBe(2);
      const versions = await store.apps.versions(first.app.id);
      expect(versions.map((v) => [v.version, v.bundleHash, v.functions.map((f) => f.name)])).toEqual([
        [2, "b2", ["a"]],
        [1, "b1", ["a", "b"]],
      ]);
      // The same name in another environment is another app.
      const staging = await store.apps.deploy({
        workspace: LOCAL_WORKSPACE,
        name: "svc",
        env: "staging",
        bundleHash: "b3",
        functions: [spec("a")],
      });
      expect(staging.app.id).not.toBe(first.app.id);
      expect((await store.apps.find({ workspace: LOCAL_WORKSPACE, env: "main" }, "svc"))?.id).toBe(first.app.id);
      await store.apps.stop(first.app.id);
      const again = await store.apps.deploy({
        workspace: LOCAL_WORKSPACE,
        name: "svc",
        env: "main",
        bundleHash: "b4",
        functions: [spec("a")],
      });
      expect(again.app.id).not.toBe(first.app.id);
      expect(again.app.version).toBe(1);
    });

    it("finds a web function by its URL's names, and the labels other running apps use", async () => {
      const web = (name: string, label: string): FunctionSpec => ({
        ...spec(name),
        web: { kind: "fetch", label, docs: false, requiresProxyAuth: false },
      });
      const scope = { workspace: LOCAL_WORKSPACE, env: "main" };
      const deployed = await store.apps.deploy({
        ...scope,
        name: "site",
        bundleHash: "b",
        functions: [web("home", "home"), spec("plain")],
      });
      const url = { workspaceName: "local", env: "main", app: "site", label: "home" };
      expect(await store.apps.findWebFunction(url)).toEqual({ functionId: deployed.functions[0]!.id });
      expect(await store.apps.findWebFunction({ ...url, workspaceName: "elsewhere" })).toBeUndefined();
      expect(await store.apps.findWebFunction({ ...url, env: "staging" })).toBeUndefined();
      expect(await store.apps.findWebFunction({ ...url, label: "plain" })).toBeUndefined();
      const host = { workspaceName: "local", env: "main", labelApp: "home-site" };
      expect(await store.apps.findWebFunctionByHost(host)).toEqual({ functionId: deployed.functions[0]!.id });
      expect(await store.apps.findWebFunctionByHost({ ...host, labelApp: "HOME-SITE" })).toBeUndefined();
      expect(await store.apps.findWebFunctionByHost({ ...host, labelApp: "home-sit" })).toBeUndefined();
      expect(await store.apps.findWebFunctionByHost({ ...host, env: "staging" })).toBeUndefined();
      expect(await store.apps.findWebFunctionByHost({ ...host, workspaceName: "elsewhere" })).toBeUndefined();
      expect(await store.apps.webLabelsInUse(scope, ["home", "other"])).toEqual([
        { label: "home", appId: deployed.app.id, appName: "site", appMode: "deployed", functionName: "home" },
      ]);
      expect(await store.apps.webLabelsInUse(scope, ["home"], "site")).toEqual([]);
      expect(await store.apps.webLabelsInUse({ ...scope, env: "staging" }, ["home"])).toEqual([]);
      await store.apps.stop(deployed.app.id);
      expect(await store.apps.findWebFunction(url)).toBeUndefined();
      expect(await store.apps.findWebFunctionByHost(host)).toBeUndefined();
      expect(await store.apps.webLabelsInUse(scope, ["home"])).toEqual([]);
    });

    it("finds functions by app name and stops apps", async () => {
      const { app } = await store.apps.create({
        workspace: LOCAL_WORKSPACE,
        name: "named",
        env: "main",
        mode: "detached",
        bundleHash: "b",
        functions: [spec("g")],
      });
      const found = await store.apps.findFunction({ workspace: LOCAL_WORKSPACE, env: "main" }, "named", "g");
      expect(found?.spec.name).toBe("g");
      expect(await store.apps.findFunction({ workspace: LOCAL_WORKSPACE, env: "other" }, "named", "g")).toBeUndefined();
      await store.apps.stop(app.id);
      expect(await store.apps.findFunction({ workspace: LOCAL_WORKSPACE, env: "main" }, "named", "g")).toBeUndefined();
      expect((await store.apps.get(app.id))?.state).toBe("stopped");
    });

    it("records which workspaces may read a blob, and keeps the first blob published for a layer", async () => {
      await store.blobs.grant(LOCAL_WORKSPACE, ["h1", "h2", "h1"]);
      await store.blobs.grant(LOCAL_WORKSPACE, ["h1"]);
      await store.blobs.grant("ws-other", []);
      expect(await store.blobs.owns(LOCAL_WORKSPACE, "h1")).toBe(true);
      expect(await store.blobs.owns(LOCAL_WORKSPACE, "h3")).toBe(false);
      expect(await store.blobs.owns("ws-other", "h1")).toBe(false);
      expect(await store.blobs.findLayer("k1")).toBeUndefined();
      await store.blobs.publishLayer("k1", "d1");
      await store.blobs.publishLayer("k1", "d2");
      expect(await store.blobs.findLayer("k1")).toBe("d1");
    });

    it("records workers and their containers, and lists the containers not stopped", async () => {
      await store.fleet.upsertWorker({ id: "wk-fleet", name: "n", runtime: "process", capacity: { cpu: 2 } });
      expect(await store.fleet.recentWorkers(60_000)).toContain("wk-fleet");
      const container = {
        workerId: "wk-fleet",
        functionId,
        version: 1,
        workspace: LOCAL_WORKSPACE,
        appId: "ap-x",
        env: "main",
      };
      const token = await store.fleet.addContainer({ id: "ct-fleet-1", ...container });
      expect(token).toMatch(/^ct-fleet-1:sk-/);
      await store.fleet.addContainer({ id: "ct-fleet-2", ...container });
      await store.fleet.setContainerState("ct-fleet-1", "running");
      const live = async () =>
        (await store.fleet.liveContainers())
          .filter((c) => c.workerId === "wk-fleet")
          .sort((a, b) => a.id.localeCompare(b.id));
      expect(await live()).toEqual([
        { id: "ct-fleet-1", workerId: "wk-fleet", functionId, state: "running", version: 1 },
        { id: "ct-fleet-2", workerId: "wk-fleet", functionId, state: "starting", version: 1 },
      ]);
      await store.fleet.stopContainers(["ct-fleet-2"], "gone");
      expect((await live()).map((c) => c.id)).toEqual(["ct-fleet-1"]);
    });

    it("keeps how a container started, each phase's time, and when its first input finished", async () => {
      await store.fleet.upsertWorker({ id: "wk-start", name: "n", runtime: "process", capacity: { cpu: 2 } });
      const container = {
        workerId: "wk-start",
        functionId,
        version: 1,
        workspace: LOCAL_WORKSPACE,
        appId: "ap-x",
        env: "main",
      };
      await store.fleet.addContainer({ id: "ct-start-1", ...container });
      await store.fleet.addContainer({ id: "ct-start-2", ...container });
      const phases = { placement: 12, prepare: 3, create: 80, boot: 450, load: 120, enter: 0 };
      await store.fleet.containerStarted("ct-start-1", { kind: "restored", phases });
      await store.fleet.containerStarted("ct-start-2", undefined);
      await store.fleet.firstInputFinished("ct-start-1", 35);
      await store.fleet.firstInputFinished("ct-start-1", 900);
      const live = (await store.fleet.liveContainers()).filter((c) => c.workerId === "wk-start");
      expect(live.find((c) => c.id === "ct-start-1")).toEqual({
        id: "ct-start-1",
        workerId: "wk-start",
        functionId,
        state: "running",
        version: 1,
        start: { kind: "restored", phases },
        firstInputMs: 35,
      });
      expect(live.find((c) => c.id === "ct-start-2")).toEqual({
        id: "ct-start-2",
        workerId: "wk-start",
        functionId,
        state: "running",
        version: 1,
      });
    });

    it("rolls a failed transaction back, and keeps other statements out of an open one", async () => {
      let outside: Promise<unknown> | undefined;
      await expect(
        store.db.transaction(async (tx) => {
          await tx.query("INSERT INTO workers (id, name, runtime, capacity) VALUES ('w-tx', 'n', 'r', '{}')");
          // A statement from elsewhere while the transaction is open must not land inside it.
          outside = store.db.query(
            "INSERT INTO workers (id, name, runtime, capacity) VALUES ('w-out', 'n', 'r', '{}')",
          );
          throw new Error("changed my mind");
        }),
      ).rejects.toThrow("changed my mind");
      await outside;
      const ids = await store.db.query<{ id: string }>(
        "SELECT id FROM workers WHERE id IN ('w-tx', 'w-out') ORDER BY id",
      );
      expect(ids.map((row) => row.id)).toEqual(["w-out"]);
    });

    volumeConformance(() => store);

    it("deletes calls that finished past the results' age, with their inputs and results", async () => {
      const { callId, ids } = await submit(2);
      await store.calls.persist({
        ...empty(),
        results: ids.map((id, idx) => result(callId, id, idx, "r")),
        progress: [{ inputId: ids[0]!, attempt: 1, userFailures: 1, infraFailures: 0, runAfterMs: 0 }],
        finishedCalls: [callId],
      });
      await store.db.query("UPDATE calls SET finished_at = now() - interval '8 days' WHERE id = $1::uuid", [callId]);
      expect(await store.calls.deleteFinished(7 * 86_400_000)).toBeGreaterThanOrEqual(1);
      expect(await store.calls.get(callId)).toBeUndefined();
      expect(await store.calls.results(callId)).toEqual([]);
      const left = await store.db.query("SELECT 1 FROM input_progress WHERE input_id = $1::bigint", [ids[0]]);
      expect(left).toEqual([]);
    });
  });
}
