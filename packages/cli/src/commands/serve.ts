import { join } from "node:path";
import { setContext } from "skiff/plumbing";
import { AppSession } from "../app-session.js";
import { bundleFile, displayPath, UserCodeError } from "../bundle.js";
import type { Config } from "../config.js";
import { describe, load } from "../load-app.js";
import { dim, say, yellow } from "../output.js";
import { hasWebFunction, printWebUrls } from "../web-urls.js";

/**
 * `skiff serve FILE`: runs FILE's app, ephemeral, for as long as this command runs, and prints the URL of each
 * web function; the app's logs stream here meanwhile, and Ctrl-C stops it. A change to FILE restarts nothing
 * (yet): run the command again to serve the new code.
 */
export async function serveCommand(file: string, config: Config): Promise<number> {
  const shown = displayPath(file);
  const bundle = await bundleFile(file, join(config.SKIFF_HOME, "bundles"));
  setContext({ v: 1, where: "local", functionIds: {} });
  const collected = await load(bundle, shown);
  const manifest = describe(collected, shown, bundle);
  if (!hasWebFunction(manifest)) {
    throw new UserCodeError(
      `skiff serve needs a web function: app.web, app.endpoint or app.webServer; ${shown} defines none (run its entrypoints with \`skiff run\`)`,
    );
  }

  const session = await AppSession.open({ bundle, manifest, collected, mode: "ephemeral", config });
  await printWebUrls(manifest, session);
  say(dim(`serving until Ctrl-C; a change to ${shown} restarts nothing yet: run \`skiff serve\` again to pick it up`));

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
  if (ended === "stopped") {
    say(yellow(`the app was stopped elsewhere (\`skiff app stop ${session.appId}\`?)`));
    return 1;
  }
  say("stopping the app…");
  await session.end();
  return 0;
}
