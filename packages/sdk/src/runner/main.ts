import { runRunner } from "./runner.js";

// Entry of the runner program injected into containers; the worker passes everything by environment but the
// container's token, which comes over the socket (see runner.ts).
const env = process.env;
const missing = ["SKIFF_SOCKET", "SKIFF_BUNDLE", "SKIFF_FUNCTION"].filter((name) => !env[name]);
if (missing.length > 0) {
  console.error(`skiff runner: missing ${missing.join(", ")}; the runner is started by a Skiff worker, not by hand`);
  process.exit(2);
}
await runRunner({
  socketPath: env.SKIFF_SOCKET!,
  bundlePath: env.SKIFF_BUNDLE!,
  functionName: env.SKIFF_FUNCTION!,
  maxInputs: Number(env.SKIFF_MAX_INPUTS ?? "1"),
  params: env.SKIFF_PARAMS,
  batch: env.SKIFF_BATCH ? (JSON.parse(env.SKIFF_BATCH) as { maxBatchSize: number; waitMs: number }) : undefined,
  containerId: env.SKIFF_CONTAINER_ID,
  api: env.SKIFF_API_SOCKET ? { socketPath: env.SKIFF_API_SOCKET } : undefined,
  app: env.SKIFF_APP_ID
    ? {
        id: env.SKIFF_APP_ID,
        env: env.SKIFF_ENV ?? "main",
        functionIds: JSON.parse(env.SKIFF_FUNCTION_IDS ?? "{}") as Record<string, string>,
      }
    : undefined,
});
