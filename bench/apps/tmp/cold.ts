import { setTimeout as sleep } from "node:timers/promises";
import { app, cold } from "../skiff-bench.js";

export * from "../skiff-bench.js";
export const c = app.localEntrypoint(async () => {
  for (let i = 0; i < 4; i++) {
    await sleep(2500);
    console.log(`TL ${Date.now() % 100000} client-call`);
    const r = await cold.remote();
    console.log(`TL ${Date.now() % 100000} client-result up=${r.uptimeMs.toFixed(0)}`);
  }
});
