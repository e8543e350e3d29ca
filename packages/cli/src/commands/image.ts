import { execFile } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import { mkdir, rm, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { buildImage, Client, setContext } from "skiff";
import { bundleFile, displayPath, UserCodeError } from "../bundle.js";
import type { Config } from "../config.js";
import { ensureServer } from "../embedded.js";
import { dim, formatError, green, say } from "../output.js";
import { describe, load, splitTarget } from "./run.js";

/** `skiff image build FILE[::NAME]`: builds the images of FILE's functions (or of one) now. */
export async function imageBuildCommand(target: string, config: Config): Promise<number> {
  const [file, name] = splitTarget(target);
  const shown = displayPath(file);
  const bundle = await bundleFile(file, join(config.SKIFF_HOME, "bundles"));
  setContext({ v: 1, where: "local", functionIds: {} });
  const manifest = describe(await load(bundle.path, shown), shown);
  const functions = name ? manifest.functions.filter((fn) => fn.name === name) : manifest.functions;
  if (functions.length === 0) {
    const names = manifest.functions.map((fn) => fn.name).join(", ") || "none";
    throw new UserCodeError(`${shown} has no function "${name}"; its functions: ${names}`);
  }
  // Functions sharing an image build it once: the last layer's key names all of it.
  const images = new Map<string, { image: (typeof functions)[number]["image"]; names: string[] }>();
  for (const fn of functions) {
    const key = JSON.stringify([fn.image.base, fn.image.layers.at(-1)?.key ?? fn.image.nodeMajor, fn.image.mounts]);
    const entry = images.get(key) ?? { image: fn.image, names: [] };
    entry.names.push(fn.name);
    images.set(key, entry);
  }
  const client = new Client({ serverUrl: await ensureServer(config, say) });
  try {
    for (const { image, names } of images.values()) {
      say(`building the image of ${names.join(", ")} ${dim(`(${image.layers.length} layers)`)}`);
      await buildImage(client, image, (line) => console.log(line));
    }
    say(green(`built ${images.size} image(s)`));
    return 0;
  } catch (error) {
    process.stderr.write(`${formatError(error)}\n`);
    return 1;
  } finally {
    client.close();
  }
}

/** `skiff image export FILE[::NAME] DIR`: builds a function's image and writes it as an OCI layout. */
export async function imageExportCommand(target: string, out: string, config: Config): Promise<number> {
  const [file, name] = splitTarget(target);
  const shown = displayPath(file);
  const dir = resolve(out);
  if (existsSync(dir) && readdirSync(dir).length > 0) {
    throw new UserCodeError(`${out} is not empty: export into a new or empty directory`);
  }
  const bundle = await bundleFile(file, join(config.SKIFF_HOME, "bundles"));
  setContext({ v: 1, where: "local", functionIds: {} });
  const manifest = describe(await load(bundle.path, shown), shown);
  const fn = name ? manifest.functions.find((f) => f.name === name) : manifest.functions[0];
  if (!fn || (!name && manifest.functions.length > 1)) {
    const names = manifest.functions.map((f) => f.name).join(", ") || "none";
    throw new UserCodeError(`name the function whose image to export: ${shown}::NAME (${names})`);
  }
  const client = new Client({ serverUrl: await ensureServer(config, say) });
  try {
    say(`building and exporting the image of ${fn.name}`);
    const hash = await buildImage(client, fn.image, (line) => console.log(line), { export: true });
    if (!hash) throw new Error("the server did not return the exported layout");
    const tarball = `${dir}.tar`;
    await writeFile(tarball, await client.getBlob(hash));
    await mkdir(dir, { recursive: true });
    await promisify(execFile)("tar", ["-xf", tarball, "-C", dir]);
    await rm(tarball, { force: true });
    say(green(`exported to ${out}: an OCI layout with the tag latest (e.g. skopeo copy oci:${out}:latest docker://…)`));
    return 0;
  } catch (error) {
    process.stderr.write(`${formatError(error)}\n`);
    return 1;
  } finally {
    client.close();
  }
}
