import { runRunner } from "./runner.js";

// Entry of the runner program injected into containers; the worker passes everything by environment.
const env = process.env;
const missing = ["SKIFF_SOCKET", "SKIFF_BUNDLE", "SKIFF_FUNCTION"].filter((name) => !env[name]);
if (missing.length > 0) {
  console.error(`skiff runner: missing ${missing.join(", ")}; the runner is started by a Skiff worker, not by hand`);
  process.exit(2);
}
const token = env.SKIFF_CONTAINER_TOKEN;
// The function's own code and the processes it starts do not need the token in their environment: the SDK
// has it from the runner.
delete env.SKIFF_CONTAINER_TOKEN;
await runRunner({
  socketPath: env.SKIFF_SOCKET!,
  bundlePath: env.SKIFF_BUNDLE!,
  functionName: env.SKIFF_FUNCTION!,
  maxInputs: Number(env.SKIFF_MAX_INPUTS ?? "1"),
  params: env.SKIFF_PARAMS,
  batch: env.SKIFF_BATCH ? (JSON.parse(env.SKIFF_BATCH) as { maxBatchSize: number; waitMs: number }) : undefined,
  api: env.SKIFF_API_SOCKET && token ? { socketPath: env.SKIFF_API_SOCKET, token } : undefined,
  app: env.SKIFF_APP_ID
    ? {
        id: env.SKIFF_APP_ID,
        env: env.SKIFF_ENV ?? "main",
        functionIds: JSON.parse(env.SKIFF_FUNCTION_IDS ?? "{}") as Record<string, string>,
      }
    : undefined,
});
