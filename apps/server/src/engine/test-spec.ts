import type { FunctionSpec, ServerToWorker } from "@skiff/protocol";
import type { ControlPlane } from "./control-plane.js";
import type { EngineState } from "./state.js";
import type { ContainerInfo, WorkerConn } from "./workers.js";

/** A function spec for engine tests: one input per container, no retries, and `overrides`. */
export function testSpec(overrides: Partial<FunctionSpec> = {}): FunctionSpec {
  return {
    name: "f",
    kind: "function",
    timeoutMs: 30_000,
    startupTimeoutMs: 60_000,
    retries: { maxRetries: 0, initialDelayMs: 0, backoffCoefficient: 1, maxDelayMs: 0 },
    cpu: 1,
    memoryMiB: 512,
    image: { base: "debian-bookworm", nodeMajor: 20, layers: [], mounts: [] },
    minContainers: 0,
    maxContainers: 1,
    bufferContainers: 0,
    scaledownWindowMs: 60_000,
    maxInputs: 1,
    secrets: [],
    volumes: [],
    ...overrides,
  };
}

/** Places a container on a connected worker, as the engine does when it starts one (for tests that fake it). */
export function placeContainer(control: ControlPlane, worker: WorkerConn, container: ContainerInfo): void {
  (control as unknown as { state: EngineState }).state.workers.placeContainer(worker, container);
}

/**
 * A worker played by a test: it keeps what the engine sends it; `take(t)` answers (and drops) the messages of
 * one type.
 */
export function fakeWorker(): {
  worker: WorkerConn;
  sent: ServerToWorker[];
  take<T extends ServerToWorker["t"]>(t: T): Extract<ServerToWorker, { t: T }>[];
} {
  const sent: ServerToWorker[] = [];
  const worker: WorkerConn = {
    id: "wk-test",
    name: "test",
    capacity: { cpu: 8, memoryMiB: 8192 },
    containers: new Map(),
    send: (message) => sent.push(message),
  };
  const take = <T extends ServerToWorker["t"]>(t: T) => {
    const out = sent.filter((m) => m.t === t) as Extract<ServerToWorker, { t: T }>[];
    sent.splice(0, sent.length, ...sent.filter((m) => m.t !== t));
    return out;
  };
  return { worker, sent, take };
}
