import type { RunnerEnvironment } from "@skiff/protocol";
import { parseRunnerEnvironment } from "@skiff/protocol/parse-runner-env";
import { runRunner } from "./runner.js";

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
