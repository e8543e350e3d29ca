import { randomUUID } from "node:crypto";
import type { FunctionSpec, RetryPolicy } from "@skiff/protocol";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Db } from "./db.js";
import { Store } from "./store.js";

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
    image: { base: "debian-bookworm", nodeMajor: 20 },
    minContainers: 0,
    maxContainers: 10,
    bufferContainers: 0,
    scaledownWindowMs: 60_000,
    maxInputs: 1,
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
      const { functions } = await store.createApp({
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

    async function submit(n: number, callId = randomUUID()) {
      const inputs = Array.from({ length: n }, (_, idx) => ({ idx, args: bytes(`in${idx}`) }));
      await store.submit({ callId, functionId, total: n, inputs });
      return callId;
    }

    async function drain() {
      for (;;) {
        const claimed = await store.claim({ functionId, owner: "drain", max: 1000, leaseMs: 10_000 });
        if (claimed.length === 0) return;
        await store.recordOutputs(
          claimed.map((c) => ({ ...c, status: "success" as const, retryable: true, data: bytes("x") })),
          () => NO_RETRY,
        );
      }
    }

    it("submits idempotently by (call, idx) and claims in order with attempts", async () => {
      await drain();
      const callId = await submit(3);
      expect(
        (await store.submit({ callId, functionId, total: 3, inputs: [{ idx: 1, args: bytes("dup") }] })).inserted,
      ).toBe(0);
      const claimed = await store.claim({ functionId, owner: "c1", max: 2, leaseMs: 10_000 });
      expect(claimed.map((c) => text(c.args))).toEqual(["in0", "in1"]);
      expect(claimed.every((c) => c.attempt === 1)).toBe(true);
      const rest = await store.claim({ functionId, owner: "c2", max: 10, leaseMs: 10_000 });
      expect(rest.map((c) => text(c.args))).toEqual(["in2"]);
      expect(await store.claim({ functionId, owner: "c3", max: 10, leaseMs: 10_000 })).toEqual([]);
    });

    it("writes inputs already leased to waiting containers", async () => {
      await drain();
      const callId = randomUUID();
      const inputs = [0, 1, 2].map((idx) => ({
        idx,
        args: bytes(`in${idx}`),
        ...(idx < 2 ? { owner: `box${idx}` } : {}),
      }));
      const { inserted, leased } = await store.submit({ callId, functionId, total: 3, inputs, leaseMs: 60_000 });
      expect(inserted).toBe(3);
      expect(leased.map((l) => [l.idx, l.owner, l.attempt])).toEqual([
        [0, "box0", 1],
        [1, "box1", 1],
      ]);
      const rest = await store.claim({ functionId, owner: "other", max: 10, leaseMs: 10_000 });
      expect(rest.map((r) => r.idx)).toEqual([2]);
      // A resend leases nothing twice.
      expect((await store.submit({ callId, functionId, total: 3, inputs, leaseMs: 60_000 })).leased).toEqual([]);
    });

    it("records a success once; the first success wins", async () => {
      await drain();
      const callId = await submit(1);
      const [input] = await store.claim({ functionId, owner: "c", max: 1, leaseMs: 10_000 });
      const first = await store.recordOutputs(
        [{ ...input!, status: "success", retryable: true, data: bytes("one") }],
        () => NO_RETRY,
      );
      const second = await store.recordOutputs(
        [{ ...input!, status: "success", retryable: true, data: bytes("two") }],
        () => NO_RETRY,
      );
      expect(first.map((r) => text(r.data))).toEqual(["one"]);
      expect(second).toEqual([]);
      const results = await store.results(callId);
      expect(results.map((r) => [r.idx, r.status, text(r.data)])).toEqual([[0, "success", "one"]]);
    });

    it("retries user failures within the policy, then fails", async () => {
      await drain();
      const policy: RetryPolicy = { maxRetries: 1, initialDelayMs: 0, backoffCoefficient: 2, maxDelayMs: 0 };
      const callId = await submit(1);
      const [a1] = await store.claim({ functionId, owner: "c", max: 1, leaseMs: 10_000 });
      const r1 = await store.recordOutputs(
        [{ ...a1!, status: "failure", retryable: true, data: bytes("boom1") }],
        () => policy,
      );
      expect(r1).toEqual([]);
      const [a2] = await store.claim({ functionId, owner: "c", max: 1, leaseMs: 10_000 });
      expect(a2!.attempt).toBe(2);
      // A stale failure report of attempt 1 no longer counts.
      expect(
        await store.recordOutputs([{ ...a1!, status: "failure", retryable: true, data: bytes("old") }], () => policy),
      ).toEqual([]);
      const r2 = await store.recordOutputs(
        [{ ...a2!, status: "failure", retryable: true, data: bytes("boom2") }],
        () => policy,
      );
      expect(r2.map((r) => [r.callId, r.status, r.code, text(r.data)])).toEqual([
        [callId, "failure", "USER_ERROR", "boom2"],
      ]);
    });

    it("does not retry a non-retryable failure", async () => {
      await drain();
      const policy: RetryPolicy = { maxRetries: 5, initialDelayMs: 0, backoffCoefficient: 2, maxDelayMs: 0 };
      await submit(1);
      const [a1] = await store.claim({ functionId, owner: "c", max: 1, leaseMs: 10_000 });
      const r = await store.recordOutputs(
        [{ ...a1!, status: "failure", retryable: false, data: bytes("no") }],
        () => policy,
      );
      expect(r).toHaveLength(1);
    });

    it("delays retries by the backoff", async () => {
      await drain();
      const policy: RetryPolicy = { maxRetries: 1, initialDelayMs: 60_000, backoffCoefficient: 2, maxDelayMs: 60_000 };
      await submit(1);
      const [a1] = await store.claim({ functionId, owner: "c", max: 1, leaseMs: 10_000 });
      await store.recordOutputs([{ ...a1!, status: "failure", retryable: true, data: bytes("x") }], () => policy);
      expect(await store.claim({ functionId, owner: "c", max: 1, leaseMs: 10_000 })).toEqual([]);
      const backlog = (await store.backlog()).find((b) => b.functionId === functionId);
      expect(backlog).toMatchObject({ pending: 0, delayed: 1 });
      await store.db.query("UPDATE inputs SET run_after = now() WHERE status = 'pending'");
    });

    it("requeues expired leases and lost attempts outside the user budget, failing after the infra budget", async () => {
      await drain();
      const callId = await submit(2);
      await store.claim({ functionId, owner: "c", max: 2, leaseMs: 1 });
      await new Promise((r) => setTimeout(r, 20));
      const failure = { maxInfra: 1, code: "CONTAINER_CRASHED" as const, data: new Uint8Array([1]) };
      expect(await store.requeueLost({ expiredBefore: "now" }, failure)).toMatchObject({ requeued: 2, finished: [] });
      const again = await store.claim({ functionId, owner: "c", max: 2, leaseMs: 10_000 });
      expect(again.map((a) => a.attempt)).toEqual([2, 2]);
      const lost = await store.requeueLost(
        { inputs: again.map((a) => ({ inputId: a.inputId, attempt: a.attempt })) },
        failure,
      );
      expect(lost.requeued).toBe(0);
      expect(lost.finished.map((f) => [f.callId, f.code])).toEqual([
        [callId, "CONTAINER_CRASHED"],
        [callId, "CONTAINER_CRASHED"],
      ]);
    });

    it("requeues the inputs of containers that are gone, at once", async () => {
      await drain();
      await submit(2);
      const [a, b] = await store
        .claim({ functionId, owner: "gone-box", max: 1, leaseMs: 60_000 })
        .then(async (first) => [
          ...first,
          ...(await store.claim({ functionId, owner: "live-box", max: 1, leaseMs: 60_000 })),
        ]);
      const failure = { maxInfra: 8, code: "CONTAINER_CRASHED" as const, data: new Uint8Array() };
      expect((await store.requeueLost({ owners: ["gone-box"] }, failure)).requeued).toBe(1);
      const again = await store.claim({ functionId, owner: "new-box", max: 5, leaseMs: 60_000 });
      expect(again.map((c) => [c.inputId, c.attempt])).toEqual([[a!.inputId, 2]]);
      expect(b!.attempt).toBe(1);
    });

    it("returns unrun inputs to the queue without counting a failure", async () => {
      await drain();
      await submit(1);
      const [a] = await store.claim({ functionId, owner: "stopping", max: 1, leaseMs: 60_000 });
      expect(await store.returnInputs([{ inputId: a!.inputId, attempt: a!.attempt }])).toBe(1);
      const [again] = await store.claim({ functionId, owner: "next", max: 1, leaseMs: 60_000 });
      expect(again?.inputId).toBe(a!.inputId);
      const [row] = await store.db.query<{ user_failures: number; infra_failures: number }>(
        "SELECT user_failures, infra_failures FROM inputs WHERE id = $1",
        [a!.inputId],
      );
      expect(row).toEqual({ user_failures: 0, infra_failures: 0 });
    });

    it("extends leases with heartbeats", async () => {
      await drain();
      await submit(1);
      const [a] = await store.claim({ functionId, owner: "c", max: 1, leaseMs: 50 });
      await store.heartbeat([{ inputId: a!.inputId, attempt: a!.attempt }], 60_000);
      await new Promise((r) => setTimeout(r, 80));
      const failure = { maxInfra: 8, code: "CONTAINER_CRASHED" as const, data: new Uint8Array() };
      expect((await store.requeueLost({ expiredBefore: "now" }, failure)).requeued).toBe(0);
    });

    it("cancels a call: unfinished inputs fail with CANCELLED and running attempts are reported", async () => {
      await drain();
      const callId = await submit(3);
      const [running] = await store.claim({ functionId, owner: "box", max: 1, leaseMs: 10_000 });
      const out = await store.cancelCall(callId);
      expect(out.finished.map((f) => f.code)).toEqual(["CANCELLED", "CANCELLED", "CANCELLED"]);
      expect(out.running).toEqual([{ inputId: running!.inputId, attempt: 1, owner: "box" }]);
      // A late success of the cancelled attempt changes nothing.
      expect(
        await store.recordOutputs(
          [{ ...running!, status: "success", retryable: true, data: bytes("late") }],
          () => NO_RETRY,
        ),
      ).toEqual([]);
    });

    it("handles a large map in batched statements", async () => {
      await drain();
      const callId = await submit(2500);
      let done = 0;
      for (;;) {
        const claimed = await store.claim({ functionId, owner: "c", max: 700, leaseMs: 10_000 });
        if (claimed.length === 0) break;
        done += (
          await store.recordOutputs(
            claimed.map((c) => ({ ...c, status: "success" as const, retryable: true, data: c.args })),
            () => NO_RETRY,
          )
        ).length;
      }
      expect(done).toBe(2500);
      const results = await store.results(callId, 2498);
      expect(results.map((r) => [r.idx, text(r.data)])).toEqual([
        [2498, "in2498"],
        [2499, "in2499"],
      ]);
    });

    it("finds functions by app name and stops apps", async () => {
      const { app } = await store.createApp({
        name: "named",
        env: "main",
        mode: "deployed",
        bundleHash: "b",
        functions: [spec("g")],
      });
      const found = await store.findFunction("main", "named", "g");
      expect(found?.spec.name).toBe("g");
      expect(await store.findFunction("other", "named", "g")).toBeUndefined();
      await store.stopApp(app.id);
      expect(await store.findFunction("main", "named", "g")).toBeUndefined();
      expect((await store.getApp(app.id))?.state).toBe("stopped");
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

    it("deletes finished results past their age", async () => {
      await drain();
      await store.db.query("UPDATE inputs SET finished_at = now() - interval '8 days' WHERE status = 'done'");
      expect(await store.deleteFinished(7 * 86_400_000)).toBeGreaterThan(0);
    });
  });
}
