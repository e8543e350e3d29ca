import { randomBytes } from "node:crypto";
import { chmod, mkdir, open, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { parse, stringify, TomlError } from "smol-toml";
import { z } from "zod";
import { SkiffError } from "./errors.js";

/**
 * Named connections to Skiff servers, kept in `SKIFF_HOME/config.toml`:
 *
 * ```toml
 * active = "local"
 * [profiles.local]
 * server_url = "http://10.0.0.5:7420"
 * token_id = "tk-..."
 * token_secret = "sk-..."
 * env = "staging"
 * ```
 */
export const CONFIG_FILE = "config.toml";

const PROFILE_KEYS = ["server_url", "token_id", "token_secret", "env"] as const;

export const Profile = z
  .object({
    server_url: z.string().url().optional(),
    token_id: z.string().min(1).optional(),
    token_secret: z.string().min(1).optional(),
    env: z.string().min(1).optional(),
  })
  .strict()
  .refine((profile) => (profile.token_id === undefined) === (profile.token_secret === undefined), {
    message: "set both token_id and token_secret, or neither",
  });
export type Profile = z.infer<typeof Profile>;

/** Unknown top-level keys pass through, so a newer CLI's settings survive a write by an older one. */
const ConfigToml = z
  .object({
    active: z.string().min(1).optional(),
    profiles: z.record(Profile).default({}),
  })
  .passthrough();

export interface ProfilesFile {
  /** Where the profiles were read from (the file may not exist). */
  path: string;
  active?: string;
  profiles: Record<string, Profile>;
  /** Something the caller should print, such as the file being readable by other users. */
  warning?: string;
}

/** The connection settings in effect: the chosen profile, overridden field by field by the environment. */
export interface ResolvedProfile {
  name?: string;
  serverUrl?: string;
  tokenId?: string;
  tokenSecret?: string;
  env?: string;
}

/** Fields to set on a profile; `null` removes a field, `undefined` leaves it as it is. */
export type ProfileFields = { [K in keyof Omit<ResolvedProfile, "name">]?: string | null };

const FIELD_KEYS = {
  serverUrl: "server_url",
  tokenId: "token_id",
  tokenSecret: "token_secret",
  env: "env",
} as const satisfies Record<keyof ProfileFields, (typeof PROFILE_KEYS)[number]>;

const PROFILE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;
const LOCK_WAIT_MS = 5_000;
const LOCK_STALE_MS = 30_000;

export function configPath(home: string): string {
  return join(home, CONFIG_FILE);
}

/** Reads `SKIFF_HOME/config.toml`; a missing file has no profiles. */
export async function readProfiles(home: string): Promise<ProfilesFile> {
  const path = configPath(home);
  const text = await readIfExists(path);
  if (text === undefined) return { path, profiles: {} };
  const { active, profiles } = validate(path, parseToml(path, text));
  const warning = await permissionWarning(path);
  return { path, profiles, ...(active === undefined ? {} : { active }), ...(warning ? { warning } : {}) };
}

/**
 * Picks the profile (SKIFF_PROFILE, else `active`, else the only one) and lets SKIFF_SERVER_URL,
 * SKIFF_TOKEN_ID, SKIFF_TOKEN_SECRET and SKIFF_ENV override its fields.
 */
export function resolveProfile(file: ProfilesFile, env: NodeJS.ProcessEnv): ResolvedProfile {
  const fromEnv = (name: string) => (env[name] === "" ? undefined : env[name]);
  const names = Object.keys(file.profiles);
  const requested = fromEnv("SKIFF_PROFILE");
  let name: string | undefined;
  if (requested !== undefined) {
    if (!Object.hasOwn(file.profiles, requested))
      throw new SkiffError("NOT_FOUND", `SKIFF_PROFILE names profile "${requested}", ${missingHint(file, names)}`);
    name = requested;
  } else if (file.active !== undefined) {
    if (!Object.hasOwn(file.profiles, file.active))
      throw new SkiffError(
        "NOT_FOUND",
        `active = "${file.active}" in ${file.path} names a missing profile, ${missingHint(file, names)}`,
      );
    name = file.active;
  } else if (names.length === 1) {
    name = names[0];
  }

  const tokenId = fromEnv("SKIFF_TOKEN_ID");
  const tokenSecret = fromEnv("SKIFF_TOKEN_SECRET");
  if ((tokenId === undefined) !== (tokenSecret === undefined))
    throw new SkiffError(
      "BAD_REQUEST",
      `${tokenId === undefined ? "SKIFF_TOKEN_SECRET" : "SKIFF_TOKEN_ID"} is set without ${
        tokenId === undefined ? "SKIFF_TOKEN_ID" : "SKIFF_TOKEN_SECRET"
      }: set both, or neither to use the profile's token`,
    );

  const profile: Profile = name === undefined ? {} : file.profiles[name]!;
  return withoutUndefined({
    name,
    serverUrl: fromEnv("SKIFF_SERVER_URL") ?? profile.server_url,
    tokenId: tokenId ?? profile.token_id,
    tokenSecret: tokenSecret ?? profile.token_secret,
    env: fromEnv("SKIFF_ENV") ?? profile.env,
  });
}

/** The token a profile holds, as it travels (`ID:SECRET`), if it holds one. */
export function credentialOf(profile: { tokenId?: string | undefined; tokenSecret?: string | undefined }) {
  return profile.tokenId && profile.tokenSecret ? `${profile.tokenId}:${profile.tokenSecret}` : undefined;
}

/**
 * Creates or updates one profile, keeping the others and any other keys; `activate` makes it the
 * `active` one. The file is written atomically with mode 0600, under a lock against other skiff processes.
 */
export async function writeProfile(
  home: string,
  name: string,
  fields: ProfileFields,
  options: { activate?: boolean } = {},
): Promise<void> {
  if (!PROFILE_NAME.test(name))
    throw new SkiffError(
      "BAD_REQUEST",
      `profile name "${name}" is invalid: use letters, digits, ".", "_" and "-", starting with a letter or digit`,
    );
  await updateConfig(home, (raw, path) => {
    const profiles = tableOf(raw, "profiles");
    const profile: Record<string, unknown> = { ...tableOf(profiles, name) };
    for (const [field, key] of Object.entries(FIELD_KEYS)) {
      const value = fields[field as keyof ProfileFields];
      if (value === null) delete profile[key];
      else if (value !== undefined) profile[key] = value;
    }
    const checked = Profile.safeParse(profile);
    if (!checked.success) throw invalid(path, checked.error.issues[0]!, ["profiles", name]);
    profiles[name] = profile;
    raw.profiles = profiles;
    if (options.activate) raw.active = name;
  });
}

/** Deletes one profile (and `active` when it named it); a missing profile is an error listing those that exist. */
export async function removeProfile(home: string, name: string): Promise<void> {
  await updateConfig(home, (raw, path) => {
    const profiles = tableOf(raw, "profiles");
    if (!Object.hasOwn(profiles, name)) {
      const names = Object.keys(profiles);
      throw new SkiffError("NOT_FOUND", `no profile "${name}", ${missingHint({ path }, names)}`);
    }
    delete profiles[name];
    if (Object.keys(profiles).length === 0) delete raw.profiles;
    if (raw.active === name) delete raw.active;
  });
}

async function updateConfig(home: string, change: (raw: Record<string, unknown>, path: string) => void): Promise<void> {
  await mkdir(home, { recursive: true, mode: 0o700 });
  const path = configPath(home);
  await withLock(`${path}.lock`, async () => {
    const text = await readIfExists(path);
    const raw: Record<string, unknown> = text === undefined ? {} : parseToml(path, text);
    // Refuse to rewrite a file that does not validate: its owner should fix it rather than lose it.
    validate(path, raw);
    change(raw, path);
    const temp = `${path}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`;
    try {
      await writeFile(temp, stringify(raw), { mode: 0o600, flag: "wx" });
      await chmod(temp, 0o600);
      await rename(temp, path);
    } catch (error) {
      await rm(temp, { force: true });
      throw error;
    }
  });
}

async function withLock<T>(lockPath: string, body: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + LOCK_WAIT_MS;
  for (;;) {
    try {
      const handle = await open(lockPath, "wx", 0o600);
      await handle.writeFile(`${process.pid}\n`);
      await handle.close();
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
    }
    const since = await stat(lockPath).then(
      (info) => Date.now() - info.mtimeMs,
      () => 0,
    );
    // A lock this old was left by a process that died mid-write.
    if (since > LOCK_STALE_MS) {
      await rm(lockPath, { force: true });
      continue;
    }
    if (Date.now() > deadline)
      throw new SkiffError(
        "CONFLICT",
        `${lockPath} is held by another skiff process; try again, or delete it if no skiff command is running`,
      );
    await new Promise((resolve) => setTimeout(resolve, 20 + Math.random() * 40));
  }
  try {
    return await body();
  } finally {
    await rm(lockPath, { force: true });
  }
}

async function readIfExists(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw error;
  }
}

function parseToml(path: string, text: string): Record<string, unknown> {
  try {
    return parse(text);
  } catch (error) {
    if (!(error instanceof TomlError)) throw error;
    const reason = error.message.split("\n")[0]!.replace(/^Invalid TOML document: /, "");
    throw new SkiffError(
      "BAD_REQUEST",
      `${path} line ${error.line}, column ${error.column}: ${reason}\n${error.codeblock}\n` +
        `fix that line (TOML syntax: https://toml.io), or delete the file to start over`,
      { cause: error },
    );
  }
}

function validate(path: string, raw: Record<string, unknown>): z.infer<typeof ConfigToml> {
  const parsed = ConfigToml.safeParse(raw);
  if (!parsed.success) throw invalid(path, parsed.error.issues[0]!, []);
  return parsed.data;
}

function invalid(path: string, issue: z.ZodIssue, prefix: string[]): SkiffError {
  const at = [...prefix, ...issue.path.map(String)];
  const table = at[0] === "profiles" && at.length >= 2 ? `[profiles.${at[1]}]` : "the top level";
  if (issue.code === "unrecognized_keys")
    return new SkiffError(
      "BAD_REQUEST",
      `${path}: unknown key ${issue.keys.map((key) => `"${key}"`).join(", ")} in ${table}; ` +
        `a profile may have ${PROFILE_KEYS.join(", ")}`,
    );
  const key = at.length > 2 ? `${at.slice(2).join(".")} in ${table}` : at.length === 2 ? table : at.join(".");
  return new SkiffError("BAD_REQUEST", `${path}: ${key || "the file"} is invalid: ${issue.message}`);
}

async function permissionWarning(path: string): Promise<string | undefined> {
  if (process.platform === "win32") return undefined;
  const { mode } = await stat(path);
  if ((mode & 0o077) === 0) return undefined;
  return `${path} is readable by other users: chmod 600 ${path}`;
}

function missingHint(file: { path: string }, names: string[]): string {
  return names.length === 0
    ? `but ${file.path} has no profiles`
    : `but ${file.path} has only ${names.map((name) => `"${name}"`).join(", ")}`;
}

function tableOf(parent: Record<string, unknown>, key: string): Record<string, unknown> {
  const value = parent[key];
  return typeof value === "object" && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : {};
}

function withoutUndefined<T extends object>(value: T): T {
  return Object.fromEntries(Object.entries(value).filter(([, field]) => field !== undefined)) as T;
}
