// An image defined in code: `skiff run examples/images.ts` builds it before the first call (about 10 s
// the first time, then every layer is cached), and `skiff image build examples/images.ts` builds it now.
import { execFileSync } from "node:child_process";
import { App, Image } from "skiff";

export const app = new App("images");

const image = Image.debianSlim()
  .aptInstall("jq")
  .npmInstall("sharp@0.33.5") // a native module, installed in the image rather than bundled
  .env({ GREETING: "hello from the image" })
  .workdir("/srv");

export const describeImage = app.function({ image }, async () => {
  // @ts-expect-error sharp is installed in the image, not where skiff runs
  const sharp = (await import("sharp")).default as { versions: Record<string, string> };
  return {
    jq: execFileSync("jq", ["--version"], { encoding: "utf8" }).trim(),
    vips: sharp.versions.vips,
    greeting: process.env.GREETING,
    cwd: process.cwd(),
  };
});
