import { connect } from "node:net";
import type { RunnerEnvironment, SpareAssignment } from "@skiff/protocol";
import { decodeMessage, FrameReader } from "@skiff/protocol/frame";
import { parseRunnerEnvironment } from "@skiff/protocol/parse-runner-env";
import { runRunner } from "./runner.js";

// A spare runner is booted ahead with no code: Node and this program are loaded by now. It waits for the
// container that takes it, whose environment comes over the spare socket, and goes on with it.
if (process.env.SKIFF_SPARE_SOCKET) {
  const spareSocket = process.env.SKIFF_SPARE_SOCKET;
  delete process.env.SKIFF_SPARE_SOCKET;
  Object.assign(process.env, await waitForAssignment(spareSocket));
}

// Entry of the runner program injected into containers; the worker passes everything by environment but the
// container's token, which comes over the socket (see runner.ts).
let env: RunnerEnvironment;
try {
  env = parseRunnerEnvironment(process.env);
} catch (error) {
  console.error(`skiff runner: ${(error as Error).message}; the runner is started by a Skiff worker, not by hand`);
  process.exit(2);
}
await runRunner({
  socketPath: env.SKIFF_SOCKET,
  bundlePath: env.SKIFF_BUNDLE,
  functionName: env.SKIFF_FUNCTION,
  maxInputs: env.SKIFF_MAX_INPUTS,
  params: env.SKIFF_PARAMS,
  batch: env.SKIFF_BATCH,
  containerId: env.SKIFF_CONTAINER_ID,
  api: env.SKIFF_API_SOCKET ? { socketPath: env.SKIFF_API_SOCKET } : undefined,
  app: env.SKIFF_APP_ID ? { id: env.SKIFF_APP_ID, env: env.SKIFF_ENV, functionIds: env.SKIFF_FUNCTION_IDS } : undefined,
  webSocket: env.SKIFF_WEB_SOCKET,
  snapshot: env.SKIFF_SNAPSHOT === "1",
});

/** Connects to the worker's spare socket and waits for the environment of the container that takes this runner. */
function waitForAssignment(path: string): Promise<Record<string, string>> {
  return new Promise((resolve) => {
    const socket = connect(path);
    const reader = new FrameReader();
    socket.on("data", (chunk: Buffer) => {
      for (const frame of reader.push(chunk)) {
        const message = decodeMessage(frame) as SpareAssignment;
        if (message.t !== "assign" || typeof message.env !== "object" || message.env === null) continue;
        socket.removeAllListeners("close");
        socket.destroy();
        resolve(message.env);
      }
    });
    // A spare nobody takes is stopped by its worker; a lost worker leaves nothing to wait for.
    socket.once("close", () => process.exit(0));
    socket.once("error", () => process.exit(1));
  });
}
