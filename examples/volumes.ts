// Volumes: a writer commits a file, a read-only reader reloads and reads it in another container.
// Run: ./skiff run examples/volumes.ts   (then: ./skiff volume ls example-models)
import { readFile, writeFile } from "node:fs/promises";
import { App, Volume } from "skiff";

export const app = new App("volumes");

const models = Volume.fromName("example-models", { createIfMissing: true });

export const download = app.function({ volumes: { "/models": models } }, async (text: string) => {
  await writeFile("/models/weights.txt", text);
  return models.commit(); // { version }: others see it after their reload()
});

export const infer = app.function({ volumes: { "/models": models.readOnly() } }, async () => {
  await models.reload();
  return (await readFile("/models/weights.txt", "utf8")).toUpperCase();
});

export const main = app.localEntrypoint(async () => {
  const { version } = await download.remote(`weights of ${new Date().toISOString()}`);
  console.log(`committed version ${version}`);
  console.log(await infer.remote());
});
