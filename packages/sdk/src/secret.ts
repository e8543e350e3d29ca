import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import type { SecretRef } from "@skiff/protocol";
import { ENV_VAR_NAME } from "@skiff/protocol/constants";
import { inContainer } from "./context.js";

const SECRET = Symbol.for("skiff.secret");

/**
 * Environment variables for a function's containers, and only for them: a secret stored in the app's
 * environment (`skiff secret create`), or values from this machine. Later secrets in a function's
 * list override earlier ones.
 * @example
 * app.function({ secrets: [Secret.fromName("hf", { requiredKeys: ["HF_TOKEN"] }), Secret.fromDotenv()] }, f);
 */
export class Secret {
  readonly [SECRET] = true;

  private constructor(
    readonly ref: SecretRef,
    /** Values from this machine, sent beside the manifest (never in it). */
    readonly values: Record<string, string> | undefined,
  ) {}

  /** A secret stored by name in the app's environment; a missing one, or one without a required key, fails the deploy. */
  static fromName(name: string, options: { requiredKeys?: string[] } = {}): Secret {
    const requiredKeys = options.requiredKeys ?? [];
    for (const key of requiredKeys) checkKey(key, `Secret.fromName("${name}"): requiredKeys`);
    return new Secret({ name, requiredKeys }, undefined);
  }

  /** Values from this program, e.g. `Secret.fromObject({ MODE: "x" })`. */
  static fromObject(values: Record<string, string>): Secret {
    if (typeof values !== "object" || values === null)
      throw new TypeError("Secret.fromObject takes an object of strings");
    for (const [key, value] of Object.entries(values)) {
      checkKey(key, "Secret.fromObject");
      if (typeof value !== "string") throw new TypeError(`Secret.fromObject: ${key} must be a string`);
    }
    return new Secret({ local: `ls-${randomUUID()}` }, { ...values });
  }

  /** The variables of a dotenv file on this machine (default `.env` in the working directory). */
  static fromDotenv(path = ".env"): Secret {
    // In a container the file is not there; the values reach it as environment variables.
    if (inContainer()) return new Secret({ local: `ls-${randomUUID()}` }, {});
    let text: string;
    try {
      text = readFileSync(resolve(path), "utf8");
    } catch (error) {
      throw new Error(`Secret.fromDotenv: cannot read ${path} (${(error as NodeJS.ErrnoException).code ?? error})`);
    }
    return Secret.fromObject(parseDotenv(text, path));
  }
}

function checkKey(key: string, where: string): void {
  if (!ENV_VAR_NAME.test(key) || key.startsWith("SKIFF_")) {
    throw new RangeError(
      `${where}: "${key}" is not a usable environment variable name (letters, digits, _; not SKIFF_…)`,
    );
  }
}

export function isSecret(value: unknown): value is Secret {
  return typeof value === "object" && value !== null && (value as { [SECRET]?: boolean })[SECRET] === true;
}

/**
 * `KEY=value` lines: `#` comments, `export ` prefixes, single quotes taken as is, double quotes with
 * `\n` escapes; anything else is an error naming the line.
 */
export function parseDotenv(text: string, file = ".env"): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [i, raw] of text.split(/\r?\n/).entries()) {
    const line = raw.trim();
    if (!line || line.startsWith("#")) continue;
    const match = /^(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$/.exec(line);
    if (!match) throw new RangeError(`${file}:${i + 1}: expected KEY=value`);
    const [, key, rest] = match as unknown as [string, string, string];
    let value = rest;
    if (value.startsWith("'") && value.endsWith("'") && value.length >= 2) value = value.slice(1, -1);
    else if (value.startsWith('"') && value.endsWith('"') && value.length >= 2)
      value = value.slice(1, -1).replace(/\\n/g, "\n").replace(/\\"/g, '"');
    else value = value.replace(/\s+#.*$/, "");
    out[key] = value;
  }
  return out;
}
