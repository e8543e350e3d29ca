import { readFileSync } from "node:fs";
import { environmentRoutes, secretRoutes } from "@skiff/protocol/http";
import { SkiffError } from "skiff";
import { parseDotenv } from "skiff/plumbing";
import { UserCodeError } from "../bundle.js";
import type { Config } from "../config.js";
import { dim, green, say } from "../output.js";
import { connectServer, serverClient } from "../server-client.js";

/** `KEY=value` arguments and a dotenv file, as one set of values (arguments win). */
function valuesOf(pairs: string[], dotenv: string | undefined): Record<string, string> {
  const values: Record<string, string> = {};
  if (dotenv) {
    let text: string;
    try {
      text = readFileSync(dotenv, "utf8");
    } catch (error) {
      throw new UserCodeError(`cannot read ${dotenv} (${(error as NodeJS.ErrnoException).code ?? error})`);
    }
    Object.assign(values, parseDotenv(text, dotenv));
  }
  for (const pair of pairs) {
    const at = pair.indexOf("=");
    // The value is never echoed back: it may be a secret.
    if (at <= 0) throw new UserCodeError(`"${pair.slice(0, Math.max(at, 0)) || "?"}…" is not KEY=value`);
    values[pair.slice(0, at)] = pair.slice(at + 1);
  }
  if (Object.keys(values).length === 0) {
    throw new UserCodeError("give the secret's values: KEY=value arguments, or --from-dotenv FILE");
  }
  return values;
}

/** `skiff secret create NAME KEY=value… [--from-dotenv FILE] [--env E] [--force]` */
export async function secretCreateCommand(
  name: string,
  pairs: string[],
  options: { env?: string; fromDotenv?: string; force?: boolean },
  config: Config,
): Promise<void> {
  const values = valuesOf(pairs, options.fromDotenv);
  const { client, env } = await connectServer(config, options.env);
  try {
    await client.call(secretRoutes.create, { body: { env, name, values, overwrite: Boolean(options.force) } });
  } catch (error) {
    if (error instanceof SkiffError && error.code === "CONFLICT") {
      throw new SkiffError("CONFLICT", `${error.message} (skiff secret create ${name} ... --force)`);
    }
    throw error;
  }
  say(green(`created secret ${name} in "${env}" with ${Object.keys(values).sort().join(", ")}`));
}

/** `skiff secret list [--env E]`: names, keys and dates; never values. */
export async function secretListCommand(options: { env?: string }, config: Config): Promise<void> {
  const { client, env } = await connectServer(config, options.env);
  const { secrets } = await client.call(secretRoutes.list, { query: { env } });
  if (secrets.length === 0) say(`no secrets in "${env}": create one with \`skiff secret create NAME KEY=value\``);
  for (const s of secrets) console.log([s.name, s.keys.join(","), s.createdAt, s.updatedAt].join("\t"));
}

/** `skiff secret delete NAME [--env E]` */
export async function secretDeleteCommand(name: string, options: { env?: string }, config: Config): Promise<void> {
  const { client, env } = await connectServer(config, options.env);
  await client.call(secretRoutes.delete, { params: { name }, query: { env } });
  say(`deleted secret ${name} from "${env}"`);
}

/** `skiff env create|list|delete` */
export async function envCommand(action: "create" | "list" | "delete", name: string | undefined, config: Config) {
  const client = await serverClient(config);
  if (action === "list") {
    const { environments } = await client.call(environmentRoutes.list);
    for (const env of environments) console.log([env.name, env.createdAt].join("\t"));
    return;
  }
  if (!name) throw new UserCodeError(`name the environment: skiff env ${action} NAME`);
  if (action === "create") {
    await client.call(environmentRoutes.create, { body: { name } });
    say(green(`created environment ${name}`) + dim(` (deploy to it with --env ${name})`));
  } else {
    await client.call(environmentRoutes.delete, { params: { name } });
    say(`deleted environment ${name}`);
  }
}
