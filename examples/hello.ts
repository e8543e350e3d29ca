import { App } from "skiff";

export const app = new App("hello");

export const square = app.function({ timeout: "30s", retries: { maxRetries: 2 } }, async (x: number) => {
  console.log("squaring", x);
  return x * x;
});

const range = (n: number) => Array.from({ length: n }, (_, i) => i);

export const main = app.localEntrypoint(async ({ n = 10 }: { n?: number }) => {
  console.log(await square.remote(7)); // 49, typed as number
  let sum = 0;
  for await (const y of square.map(range(n))) sum += y;
  console.log(`sum of squares below ${n}:`, sum);
  const call = await square.spawn(3);
  console.log(await call.get());
});
