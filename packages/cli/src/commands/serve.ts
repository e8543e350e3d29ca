import { join } from "node:path";
import type { AppManifest } from "@skiff/protocol";
import { SkiffError } from "skiff/errors";
import { type CollectedApp, setContext } from "skiff/plumbing";
import { AppSession } from "../app-session.js";
import { type Bundle, bundleFile, displayPath, UserCodeError } from "../bundle.js";
import type { Config } from "../config.js";
import { FileWatch } from "../file-watch.js";
import { describe, load } from "../load-app.js";
import { dim, formatError, green, red, say, yellow } from "../output.js";
import { refuseTypeErrors } from "../typecheck.js";
import { hasWebFunction, printWebUrls } from "../web-urls.js";

/** How long changes must stop before a reload: an editor's save is often several writes. */
const RELOAD_DEBOUNCE_MS = 100;

/** One build of the served file. */
interface Build {
  bundle: Bundle;
  manifest: AppManifest;
  collected: CollectedApp;
}

/**
 * A refusal to serve because a running app holds the labels (most often the same app, deployed), with how to
 * serve beside it: another environment has labels of its own.
 */
export function labelsInUseHint(error: unknown, shown: string, env: string | undefined): unknown {
  if (!(error instanceof SkiffError) || error.code !== "CONFLICT" || !error.message.startsWith("web labels are in use"))
    return error;
  const other = env === "dev" ? "dev2" : "dev";
  return new SkiffError(
    "CONFLICT",
    `${error.message}; or serve it in an environment of its own, beside the running app: \`skiff env create ${other}\`, then \`skiff serve --env ${other} ${shown}\``,
    { cause: error },
  );
}

/**
 * `skiff serve FILE [--env ENV] [--no-typecheck]`: runs FILE's app, ephemeral, for as long as this command runs, and prints
 * the URL of each web function; the app's logs stream here meanwhile, and Ctrl-C stops it. FILE is type-checked
 * first, as `skiff deploy` checks it: with a type error nothing starts. A change to FILE, or to a file it
 * imports, makes a new version of the app (see `reloader`): same URLs, new requests reach the new code.
 */
export async function serveCommand(
  file: string,
  options: { typecheck?: boolean; env?: string },
  config: Config,
): Promise<number> {
  const shown = displayPath(file);
  const typecheck = options.typecheck !== false;
  const bundle = await bundleFile(file, join(config.SKIFF_HOME, "bundles"));
  if (typecheck) {
    await refuseTypeErrors(file, { refused: "not served: fix the types, or serve anyway with --no-typecheck" });
  }
  const first = await build(shown, bundle);

  const session = await AppSession.open({ ...first, mode: "ephemeral", config, env: options.env }).catch(
    (error: unknown) => {
      throw labelsInUseHint(error, shown, options.env);
    },
  );
  await printWebUrls(first.manifest, session);
  say(dim(`serving until Ctrl-C; a change to ${shown} or a file it imports reloads it`));
  const reloader = reloaderOf({ file, shown, config, session, first, typecheck });

  const interrupted = new Promise<"interrupted">((resolve) => {
    const onSignal = () => {
      // A second Ctrl-C while the app stops ends this command at once; the server stops the app without it.
      process.once("SIGINT", () => process.exit(130));
      resolve("interrupted");
    };
    process.once("SIGINT", onSignal);
    process.once("SIGTERM", onSignal);
  });
  const ended = await Promise.race([interrupted, session.stopped.then(() => "stopped" as const)]);
  reloader.close();
  if (ended === "stopped") {
    say(yellow(`the app was stopped elsewhere (\`skiff app stop ${session.appId}\`?)`));
    return 1;
  }
  say("stopping the app…");
  await session.end();
  return 0;
}

/** Collects the app of FILE's bundle; refuses an app with no web function. */
async function build(shown: string, bundle: Bundle): Promise<Build> {
  setContext({ v: 1, where: "local", functionIds: {} });
  const collected = await load(bundle, shown);
  const manifest = describe(collected, shown, bundle);
  if (!hasWebFunction(manifest)) {
    throw new UserCodeError(
      `skiff serve needs a web function: app.web, app.endpoint or app.webServer; ${shown} defines none (run its entrypoints with \`skiff run\`)`,
    );
  }
  return { bundle, manifest, collected };
}

/**
 * Watches the files the bundle was made from and, RELOAD_DEBOUNCE_MS after they change, builds again and
 * makes a new version of the app, one reload at a time (a change during one causes one more). A build that
 * fails (bundling, a type error under the file's tsconfig.json unless `typecheck` is off, a throw while
 * loading, no web function left) is printed, and the running version keeps serving.
 */
function reloaderOf(options: {
  file: string;
  shown: string;
  config: Config;
  session: AppSession;
  first: Build;
  typecheck: boolean;
}): {
  close(): void;
} {
  const { file, shown, config, session, typecheck } = options;
  let current = options.first;
  let reloading: Promise<void> | undefined;
  let again = false;
  let closed = false;
  /** Whether the last change was refused: a save that then brings back the served code says so. */
  let refused = false;

  const reloadOnce = async () => {
    const started = Date.now();
    const bundle = await bundleFile(file, join(config.SKIFF_HOME, "bundles"));
    // Imports may have changed: watch what this build was made from.
    if (!closed) watch.watch(bundle.inputs);
    if (bundle.hash === current.bundle.hash) {
      if (refused) say(dim(`${shown} is back to the code that serves: nothing to reload`));
      refused = false;
      return;
    }
    if (typecheck) await refuseTypeErrors(file, { quiet: true });
    const next = await build(shown, bundle);
    if (next.manifest.name !== current.manifest.name) {
      throw new UserCodeError(
        `the app's name changed from "${current.manifest.name}" to "${next.manifest.name}": a new name is a new app, so stop this \`skiff serve\` and run it again`,
      );
    }
    const version = await session.update(next);
    const took = ((Date.now() - started) / 1000).toFixed(1);
    say(
      green(
        `reloaded ${shown} in ${took}s: version ${version} takes new requests once one of its containers is ready; requests in flight finish on the old code`,
      ),
    );
    if (labelsOf(next.manifest) !== labelsOf(current.manifest)) await printWebUrls(next.manifest, session);
    current = next;
    refused = false;
  };

  const reload = () => {
    if (closed) return;
    if (reloading) {
      again = true;
      return;
    }
    reloading = (async () => {
      do {
        again = false;
        await reloadOnce().catch((error: unknown) => {
          if (closed) return;
          refused = true;
          const message =
            error instanceof UserCodeError
              ? error.problem
              : error instanceof SkiffError
                ? error.message
                : formatError(error);
          say(red(`${shown} changed but was not reloaded: ${message}`));
          say(dim("the old code keeps serving: fix it and save again"));
        });
      } while (again && !closed);
    })().finally(() => {
      reloading = undefined;
    });
  };

  const watch = new FileWatch(reload, RELOAD_DEBOUNCE_MS);
  watch.watch(current.bundle.inputs);
  return {
    close: () => {
      closed = true;
      watch.close();
    },
  };
}

/** The web labels of a manifest, to tell whether a reload changed its URLs. */
function labelsOf(manifest: AppManifest): string {
  return manifest.functions
    .flatMap((fn) => (fn.web ? [fn.web.label] : []))
    .sort()
    .join(" ");
}
