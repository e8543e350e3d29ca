import { pathToFileURL } from "node:url";
import { type CollectedApp, collectApp, manifestOf } from "skiff/plumbing";
import { type Bundle, displayPath, UserCodeError } from "./bundle.js";
import { COLLECTING, missingPackage } from "./image-only.js";
import { formatError } from "./output.js";

/** Imports the bundle (its collection copy: see Bundle) and finds its app. */
export async function load(bundle: Bundle, shown: string): Promise<CollectedApp> {
  // Errors thrown by the user's code (its options, its imports) point at its .ts lines, not the bundle's.
  process.setSourceMapsEnabled(true);
  const global = globalThis as { [COLLECTING]?: boolean };
  global[COLLECTING] = true;
  try {
    let exports: Record<string, unknown>;
    try {
      exports = (await import(pathToFileURL(bundle.collectPath).href)) as Record<string, unknown>;
    } catch (error) {
      throw new UserCodeError(`${shown} threw while loading:\n${formatError(error)}`, {
        cause: error,
        next: "fix the error and run again",
      });
    }
    try {
      return collectApp(exports, shown);
    } catch (error) {
      throw new UserCodeError((error as Error).message);
    }
  } finally {
    global[COLLECTING] = false;
  }
}

/**
 * The app's manifest; a bad function option is the user's to fix, so it reads as such, as does a package
 * imported but installed neither here nor by an image.
 */
export function describe(collected: CollectedApp, shown: string, bundle: Bundle) {
  let manifest: ReturnType<typeof manifestOf>;
  try {
    manifest = manifestOf(collected, Number(process.versions.node.split(".")[0]));
  } catch (error) {
    throw new UserCodeError(`${shown}: ${(error as Error).message}`);
  }
  const missing = missingPackage(
    bundle.imageOnly,
    manifest.functions.map((fn) => fn.image),
    displayPath,
  );
  if (missing) throw new UserCodeError(missing);
  return manifest;
}
