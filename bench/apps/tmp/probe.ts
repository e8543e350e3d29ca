import { setTimeout as sleep } from "node:timers/promises";
import { app, noop1x16, noop4x16 } from "../skiff-bench.js";

export * from "../skiff-bench.js";
export const probe = app.localEntrypoint(async ({ containers = 1 }: { containers?: number }) => {
  const fn = containers === 4 ? noop4x16 : noop1x16;
  for (let r = 0; r < 3; r++)
    for await (const _ of fn.map(Array(containers * 32).fill(400))) {
    }
  for await (const _ of fn.map(Array(10000).fill(0))) {
  }
  console.log("IDLE_START", Date.now());
  await sleep(4000);
  console.log("IDLE_END");
  for (let i = 0; i < 3; i++) {
    const t = Date.now();
    for await (const _ of fn.map(Array(10000).fill(0))) {
    }
    console.log("MAP", Date.now() - t);
  }
});
