import type { BatchOptions } from "./batch-options.js";
import type { RunnerEnvironment } from "./runner-env.js";

/**
 * The runner's settings from its environment (`process.env`): what the RunnerEnvironment schema accepts and
 * returns, checked by hand because loading zod would add to every container's start. Throws an Error that
 * names each variable that is missing or not what a worker writes.
 */
export function parseRunnerEnvironment(env: Record<string, string | undefined>): RunnerEnvironment {
  const problems: string[] = [];
  const required = (name: string): string => {
    const value = env[name];
    if (value === undefined) problems.push(`${name} is missing`);
    else if (value === "") problems.push(`${name} is empty`);
    return value ?? "";
  };
  const json = <T>(name: string, fallback: string, check: (value: unknown) => value is T, what: string): T => {
    const text = env[name] ?? fallback;
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      problems.push(`${name} is not JSON (${JSON.stringify(text)})`);
      return undefined as T;
    }
    if (check(value)) return value;
    problems.push(`${name} must be ${what} (it is ${text})`);
    return undefined as T;
  };
  const parsed: RunnerEnvironment = {
    SKIFF_SOCKET: required("SKIFF_SOCKET"),
    SKIFF_BUNDLE: required("SKIFF_BUNDLE"),
    SKIFF_FUNCTION: required("SKIFF_FUNCTION"),
    SKIFF_MAX_INPUTS: json("SKIFF_MAX_INPUTS", "1", isCount, "an integer ≥ 1"),
    SKIFF_ENV: env.SKIFF_ENV ?? "main",
    SKIFF_FUNCTION_IDS: json("SKIFF_FUNCTION_IDS", "{}", isIds, "a map of names to ids"),
  };
  for (const name of [
    "SKIFF_API_SOCKET",
    "SKIFF_PARAMS",
    "SKIFF_CONTAINER_ID",
    "SKIFF_APP_ID",
    "SKIFF_WEB_SOCKET",
  ] as const) {
    if (env[name] !== undefined) parsed[name] = env[name];
  }
  if (env.SKIFF_SNAPSHOT !== undefined) {
    if (env.SKIFF_SNAPSHOT === "1") parsed.SKIFF_SNAPSHOT = "1";
    else problems.push(`SKIFF_SNAPSHOT must be 1 (it is ${env.SKIFF_SNAPSHOT})`);
  }
  if (env.SKIFF_BATCH !== undefined) {
    const batch = json("SKIFF_BATCH", "", isBatch, "{ maxBatchSize: 1 to 1000, waitMs: an integer ≥ 0 }");
    if (batch) parsed.SKIFF_BATCH = { maxBatchSize: batch.maxBatchSize, waitMs: batch.waitMs };
  }
  if (problems.length > 0) throw new Error(problems.join(", "));
  return parsed;
}

function isCount(value: unknown): value is number {
  return Number.isInteger(value) && (value as number) >= 1;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function isIds(value: unknown): value is Record<string, string> {
  return isPlainObject(value) && Object.values(value).every((id) => typeof id === "string");
}

function isBatch(value: unknown): value is BatchOptions {
  if (!isPlainObject(value)) return false;
  const { maxBatchSize, waitMs } = value;
  return (
    Number.isInteger(maxBatchSize) &&
    (maxBatchSize as number) >= 1 &&
    (maxBatchSize as number) <= 1000 &&
    Number.isInteger(waitMs) &&
    (waitMs as number) >= 0
  );
}
