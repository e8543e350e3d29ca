import { join } from "node:path";
import { RESOURCE_NAME } from "@skiff/protocol/constants";
import { appRoutes } from "@skiff/protocol/http";
import { localSecretsOf, setContext, uploadImageFiles } from "skiff/plumbing";
import { bundleFile, displayPath, UserCodeError } from "../bundle.js";
import type { Config } from "../config.js";
import { describe, load } from "../load-app.js";
import { dim, formatError, green, red, say } from "../output.js";
import { connectServer } from "../server-client.js";
import { refuseTypeErrors } from "../typecheck.js";
import { printWebUrls } from "../web-urls.js";
import { printSchedules } from "./app.js";
import { buildImages } from "./image.js";

/**
 * `skiff deploy FILE [--name] [--env] [--no-typecheck]`: a new version of a persistent app. The file is
 * type-checked first (under its tsconfig.json), then images build; if either fails, nothing is deployed
 * and the running version stays.
 */
export async function deployCommand(
  file: string,
  options: { name?: string; env?: string; typecheck?: boolean },
  config: Config,
): Promise<number> {
  const started = Date.now();
  const shown = displayPath(file);
  const bundle = await bundleFile(file, join(config.SKIFF_HOME, "bundles"));
  if (options.typecheck !== false) {
    await refuseTypeErrors(file, { refused: "not deployed: fix the types, or deploy anyway with --no-typecheck" });
  }
  setContext({ v: 1, where: "local", functionIds: {} });
  const collected = await load(bundle, shown);
  const manifest = describe(collected, shown, bundle);
  if (options.name) {
    if (!RESOURCE_NAME.test(options.name)) {
      throw new UserCodeError(`--name "${options.name}" is not valid: use letters, digits, '-' and '_' (at most 63)`);
    }
    manifest.name = options.name;
  }
  if (manifest.functions.length === 0) throw new UserCodeError(`${shown} defines no function or class to deploy`);

  const { client, serverUrl, env } = await connectServer(config, options.env);
  try {
    await client.putBlob(bundle.code);
    await uploadImageFiles(client, ...manifest.functions.map((fn) => fn.image));
    try {
      await buildImages(client, manifest.functions, env);
    } catch (error) {
      process.stderr.write(`${formatError(error)}\n`);
      say(red(`not deployed: ${manifest.name} in "${env}" keeps running the version it ran`));
      return 1;
    }
    const deployed = await client.call(appRoutes.deploy, {
      body: { manifest, env, bundleHash: bundle.hash, localSecrets: localSecretsOf(collected) },
    });
    const names = manifest.functions.map((fn) => (fn.kind === "class" ? `${fn.name} (class)` : fn.name));
    say(
      green(
        `deployed ${manifest.name} version ${deployed.version} to "${env}" in ${((Date.now() - started) / 1000).toFixed(1)}s`,
      ),
    );
    say(`  ${names.join(", ")} ${dim(`(app ${deployed.appId})`)}`);
    if (deployed.previous !== null) {
      say(dim(`  containers of version ${deployed.previous} drain as version ${deployed.version} starts`));
    }
    await printWebUrls(manifest, { client, serverUrl, env });
    await printSchedules(client, manifest.name, env);
    const hint = callHint(manifest.name, manifest.functions);
    say(dim(`  ${hint ? `${hint}; see` : "see"} \`skiff app history ${manifest.name}\``));
    return 0;
  } finally {
    client.close();
  }
}

/**
 * How a program calls what was deployed: functions by Function.fromName, classes by Cls.fromName; nothing
 * when every function answers HTTP instead (their URLs are printed).
 */
export function callHint(
  app: string,
  functions: { name: string; kind: "function" | "class"; web?: unknown }[],
): string | undefined {
  const callable = functions.filter((f) => f.web === undefined);
  if (callable.length === 0) return undefined;
  const ways = [];
  const fn = callable.find((f) => f.kind === "function");
  const cls = callable.find((f) => f.kind === "class");
  if (fn) ways.push(`Function.fromName("${app}", "${fn.name}")`);
  if (cls) ways.push(`Cls.fromName("${app}", "${cls.name}")`);
  return `call ${callable.length === 1 ? "it" : "them"} with ${ways.join(" or ")}`;
}
