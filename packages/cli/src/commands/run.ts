import { join } from "node:path";
import type { SkiffContext } from "skiff";
import { type CollectedApp, setContext } from "skiff/plumbing";
import { AppSession } from "../app-session.js";
import { parseFlags } from "../args.js";
import { bundleFile, displayPath, UserCodeError } from "../bundle.js";
import type { Config } from "../config.js";
import { entrypointFlags, flagName, unknownFlags } from "../entrypoint-flags.js";
import { describe, load } from "../load-app.js";
import { formatError, green, progress, say } from "../output.js";
import { printWebUrls } from "../web-urls.js";

/** `skiff run FILE[::NAME] [--detach] [args]`: runs a local entrypoint (or one function) against an ephemeral app. */
export async function runCommand(
  target: string,
  argv: string[],
  options: { detach: boolean },
  config: Config,
): Promise<number> {
  const started = Date.now();
  const [file, name] = splitTarget(target);
  const shown = displayPath(file);
  const bundle = await bundleFile(file, join(config.SKIFF_HOME, "bundles"));

  const context: SkiffContext = {
    v: 1,
    where: "local",
    functionIds: {},
    onProgress: (p) => {
      if (p.finished) progress.done();
      else progress.update(`${p.label} ${p.done}/${p.total}${p.submittedAll ? "" : "+"}`);
    },
  };
  setContext(context);
  const collected = await load(bundle, shown);
  const manifest = describe(collected, shown, bundle);
  const chosen = choose(collected, name, shown);
  if (chosen.kind === "function" && manifest.functions.some((fn) => fn.name === chosen.name && fn.web)) {
    throw new UserCodeError(
      `${shown}::${chosen.name} answers HTTP, not calls: serve it with \`skiff serve ${shown}\` (or deploy it)`,
    );
  }
  if (argv.includes("--help") || argv.includes("-h")) {
    console.log(usageOf(chosen, `${shown}::${chosen.name}`));
    return 0;
  }
  const { flags, positional } = parseFlags(argv);
  checkArguments(chosen, flags, positional, `${shown}::${chosen.name}`);

  const session = await AppSession.open({
    bundle,
    manifest,
    collected,
    mode: options.detach ? "detached" : "ephemeral",
    config,
  });
  const { client, serverUrl, token, env, appId, functionIds } = session;
  Object.assign(context, { serverUrl, token, appId, env, functionIds });
  await printWebUrls(manifest, { client, serverUrl, env });
  const onSignal = () => void session.stop().finally(() => process.exit(130));
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);

  let code = 0;
  try {
    if (chosen.kind === "entrypoint") {
      await chosen.entrypoint.run(flags);
    } else if (chosen.fn.isGenerator) {
      // A generator's values are printed as they come, one a line.
      for await (const value of chosen.fn.remoteGen(...(positional as never[]))) {
        console.log(typeof value === "string" ? value : JSON.stringify(value, jsonSafe));
      }
    } else {
      const result = await chosen.fn.remote(...(positional as never[]));
      console.log(typeof result === "string" ? result : JSON.stringify(result, jsonSafe, 2));
    }
    say(green(`done in ${((Date.now() - started) / 1000).toFixed(1)}s`));
  } catch (error) {
    process.stderr.write(`${formatError(error)}\n`);
    code = 1;
  } finally {
    await session.end();
  }
  return code;
}

export function splitTarget(target: string): [string, string | undefined] {
  const at = target.lastIndexOf("::");
  return at < 0 ? [target, undefined] : [target.slice(0, at), target.slice(at + 2)];
}

type Chosen = { name: string } & (
  | { kind: "entrypoint"; entrypoint: CollectedApp["entrypoints"] extends Map<string, infer E> ? E : never }
  | { kind: "function"; fn: CollectedApp["functions"] extends Map<string, infer F> ? F : never }
);

/** What `skiff run FILE::NAME --help` prints: how to call the chosen entrypoint or function. */
function usageOf(chosen: Chosen, where: string): string {
  if (chosen.kind === "function")
    return `usage: skiff run ${where} [--detach] [ARG ...]\nruns the function once in a container with ARG ... as its arguments`;
  const known = entrypointFlags(chosen.entrypoint.run);
  const flags =
    known === undefined
      ? " [--FLAG VALUE ...]"
      : known.length === 0
        ? ""
        : ` ${known.map((key) => `[${flagName(key)} VALUE]`).join(" ")}`;
  return `usage: skiff run ${where} [--detach]${flags}\nruns the local entrypoint here, its functions in containers; flags are the keys its parameter destructures`;
}

/** An entrypoint takes the flags its parameter destructures; a function, positional arguments. */
function checkArguments(chosen: Chosen, flags: Record<string, unknown>, positional: unknown[], where: string): void {
  if (chosen.kind === "function") {
    const names = Object.keys(flags).map(flagName);
    if (names.length > 0)
      throw new UserCodeError(`${where} is a function: it takes positional arguments, not ${names.join(", ")}`);
    return;
  }
  const known = entrypointFlags(chosen.entrypoint.run);
  const problem = unknownFlags(flags, known, where);
  if (problem) throw new UserCodeError(problem);
  if (positional.length > 0) {
    const takes = known?.length ? ` (${known.map(flagName).join(", ")})` : "";
    throw new UserCodeError(
      `${where} is an entrypoint: it takes flags${takes}, not positional arguments (${positional.join(" ")})`,
    );
  }
}

function choose(collected: CollectedApp, name: string | undefined, shown: string): Chosen {
  const names = [...collected.entrypoints.keys(), ...collected.functions.keys()];
  if (name) {
    const entrypoint = collected.entrypoints.get(name);
    if (entrypoint) return { name, kind: "entrypoint", entrypoint };
    const fn = collected.functions.get(name);
    if (fn) return { name, kind: "function", fn };
    throw new UserCodeError(
      `${shown} has no entrypoint or function "${name}"; it has: ${names.join(", ") || "nothing exported"}`,
    );
  }
  if (collected.entrypoints.size === 1) {
    const [only, entrypoint] = [...collected.entrypoints][0]!;
    return { name: only, kind: "entrypoint", entrypoint };
  }
  if (collected.entrypoints.size === 0 && collected.functions.size === 1) {
    const [only, fn] = [...collected.functions][0]!;
    return { name: only, kind: "function", fn };
  }
  throw new UserCodeError(
    `${shown} has ${collected.entrypoints.size} entrypoints and ${collected.functions.size} functions: pick one with ${shown}::NAME (${names.join(", ")})`,
  );
}

function jsonSafe(_key: string, value: unknown): unknown {
  return typeof value === "bigint" ? value.toString() : value;
}
