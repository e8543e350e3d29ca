import { execFile } from "node:child_process";
import { chmod, mkdtemp, readdir, readFile, rm, stat, utimes, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { build } from "esbuild";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type ProfilesFile, readProfiles, removeProfile, resolveProfile, writeProfile } from "./profiles.js";

let home: string;

beforeEach(async () => {
  home = await mkdtemp(join(tmpdir(), "skiff-profiles-"));
});

afterEach(async () => {
  await rm(home, { recursive: true, force: true });
});

const file = (profiles: ProfilesFile["profiles"], active?: string): ProfilesFile => ({
  path: "/home/me/.skiff/config.toml",
  profiles,
  ...(active === undefined ? {} : { active }),
});

describe("readProfiles", () => {
  it("treats a missing file as no profiles", async () => {
    expect(await readProfiles(join(home, "absent"))).toEqual({
      path: join(home, "absent", "config.toml"),
      profiles: {},
    });
  });

  it("reads back what writeProfile wrote, keeping other profiles and keys", async () => {
    await writeFile(join(home, "config.toml"), 'future_setting = 3\n[profiles.old]\nenv = "dev"\n', { mode: 0o600 });
    await writeProfile(
      home,
      "local",
      { serverUrl: "http://10.0.0.5:7420", tokenId: "tk-1", tokenSecret: "sk-1", env: "staging" },
      { activate: true },
    );
    await writeProfile(home, "local", { env: null });
    expect(await readProfiles(home)).toEqual({
      path: join(home, "config.toml"),
      active: "local",
      profiles: {
        old: { env: "dev" },
        local: { server_url: "http://10.0.0.5:7420", token_id: "tk-1", token_secret: "sk-1" },
      },
    });
    expect(await readFile(join(home, "config.toml"), "utf8")).toContain("future_setting = 3");
  });

  it("names the file, the line and the fix for a syntax error", async () => {
    await writeFile(join(home, "config.toml"), '[profiles.local]\ntoken_id = "tk-1\n', { mode: 0o600 });
    const error = await readProfiles(home).catch((caught: Error) => caught);
    expect(error).toBeInstanceOf(Error);
    expect((error as Error).message).toMatch(/config\.toml line 2, column \d+: .+/);
    expect((error as Error).message).toContain("fix that line");
  });

  it("rejects an unknown key in a profile, naming it", async () => {
    await writeFile(join(home, "config.toml"), '[profiles.local]\nserver = "http://x"\n', { mode: 0o600 });
    await expect(readProfiles(home)).rejects.toThrow(/unknown key "server" in \[profiles\.local\].*server_url/);
  });

  it("rejects a profile with only half a token", async () => {
    await writeFile(join(home, "config.toml"), '[profiles.local]\ntoken_id = "tk-1"\n', { mode: 0o600 });
    await expect(readProfiles(home)).rejects.toThrow(/set both token_id and token_secret/);
  });

  it("warns, without failing, when other users can read the file", async () => {
    await writeProfile(home, "local", { env: "dev" });
    expect((await readProfiles(home)).warning).toBeUndefined();
    await chmod(join(home, "config.toml"), 0o644);
    const read = await readProfiles(home);
    expect(read.profiles).toEqual({ local: { env: "dev" } });
    expect(read.warning).toMatch(/readable by other users: chmod 600 .*config\.toml/);
  });
});

describe("resolveProfile", () => {
  const two = file({ a: { env: "a-env" }, b: { env: "b-env", server_url: "http://b:7420" } }, "a");

  it("prefers SKIFF_PROFILE, then active, then the only profile", () => {
    expect(resolveProfile(two, { SKIFF_PROFILE: "b" })).toEqual({
      name: "b",
      env: "b-env",
      serverUrl: "http://b:7420",
    });
    expect(resolveProfile(two, {})).toEqual({ name: "a", env: "a-env" });
    expect(resolveProfile(file({ only: { env: "x" } }), {})).toEqual({ name: "only", env: "x" });
    expect(resolveProfile(file({ a: {}, b: {} }), {})).toEqual({});
    expect(resolveProfile(file({}), {})).toEqual({});
  });

  it("lets environment variables override fields one by one", () => {
    const local = file({
      local: { server_url: "http://10.0.0.5:7420", token_id: "tk-1", token_secret: "sk-1", env: "staging" },
    });
    expect(resolveProfile(local, { SKIFF_ENV: "prod", SKIFF_SERVER_URL: "http://other:7420" })).toEqual({
      name: "local",
      serverUrl: "http://other:7420",
      tokenId: "tk-1",
      tokenSecret: "sk-1",
      env: "prod",
    });
    expect(resolveProfile(local, { SKIFF_TOKEN_ID: "tk-2", SKIFF_TOKEN_SECRET: "sk-2" })).toMatchObject({
      tokenId: "tk-2",
      tokenSecret: "sk-2",
    });
    expect(resolveProfile(file({}), { SKIFF_TOKEN_ID: "tk-2", SKIFF_TOKEN_SECRET: "sk-2" })).toEqual({
      tokenId: "tk-2",
      tokenSecret: "sk-2",
    });
  });

  it("requires SKIFF_TOKEN_ID and SKIFF_TOKEN_SECRET together", () => {
    expect(() => resolveProfile(two, { SKIFF_TOKEN_ID: "tk" })).toThrow(/SKIFF_TOKEN_ID is set without .*set both/);
    expect(() => resolveProfile(two, { SKIFF_TOKEN_SECRET: "sk" })).toThrow(
      /SKIFF_TOKEN_SECRET is set without .*set both/,
    );
  });

  it("lists the profiles that exist when the chosen one does not", () => {
    expect(() => resolveProfile(two, { SKIFF_PROFILE: "c" })).toThrow(/profile "c".*"a", "b"/);
    expect(() => resolveProfile(file({ a: {} }, "gone"), {})).toThrow(/active = "gone".*"a"/);
  });
});

describe("writeProfile and removeProfile", () => {
  it("create SKIFF_HOME and write the file with mode 0600", async () => {
    const nested = join(home, "new", ".skiff");
    await writeProfile(nested, "local", { tokenId: "tk-1", tokenSecret: "sk-1" });
    expect((await stat(join(nested, "config.toml"))).mode & 0o777).toBe(0o600);
    expect(await readdir(nested)).toEqual(["config.toml"]);
  });

  it("tighten a loose file to 0600 when rewriting it", async () => {
    await writeFile(join(home, "config.toml"), "", { mode: 0o644 });
    await chmod(join(home, "config.toml"), 0o644);
    await writeProfile(home, "local", { env: "dev" });
    expect((await stat(join(home, "config.toml"))).mode & 0o777).toBe(0o600);
  });

  it("lose no profile when several calls write at once", async () => {
    const names = Array.from({ length: 8 }, (_, index) => `p${index}`);
    await Promise.all(names.map((name) => writeProfile(home, name, { env: name })));
    expect(Object.keys((await readProfiles(home)).profiles).sort()).toEqual(names);
    expect(await readdir(home)).toEqual(["config.toml"]);
  });

  it("lose no profile when separate processes write at once", async () => {
    const script = join(home, "bin", "writer.mjs");
    const entry = fileURLToPath(new URL("./profiles.ts", import.meta.url));
    await build({
      stdin: {
        contents: `import { writeProfile } from ${JSON.stringify(entry)};
const [home, ...names] = process.argv.slice(2);
for (const name of names) await writeProfile(home, name, { env: name });`,
        resolveDir: home,
        loader: "ts",
      },
      bundle: true,
      platform: "node",
      format: "esm",
      outfile: script,
      logLevel: "silent",
    });
    const target = join(home, "skiff");
    const run = (prefix: string) =>
      promisify(execFile)(process.execPath, [script, target, ...Array.from({ length: 10 }, (_, i) => `${prefix}${i}`)]);
    await Promise.all([run("a"), run("b"), run("c")]);
    expect(Object.keys((await readProfiles(target)).profiles)).toHaveLength(30);
    expect(await readdir(target)).toEqual(["config.toml"]);
  });

  it("take over a stale lock", async () => {
    const lock = join(home, "config.toml.lock");
    await writeFile(lock, "12345\n");
    const old = new Date(Date.now() - 60_000);
    await utimes(lock, old, old);
    await writeProfile(home, "local", { env: "dev" });
    expect((await readProfiles(home)).profiles).toEqual({ local: { env: "dev" } });
  });

  it("reject a bad name or an invalid field without touching the file", async () => {
    await writeProfile(home, "local", { env: "dev" });
    await expect(writeProfile(home, "bad name", { env: "x" })).rejects.toThrow(/profile name "bad name" is invalid/);
    await expect(writeProfile(home, "local", { serverUrl: "not a url" })).rejects.toThrow(/server_url/);
    await expect(writeProfile(home, "local", { tokenId: "tk-only" })).rejects.toThrow(/set both/);
    expect((await readProfiles(home)).profiles).toEqual({ local: { env: "dev" } });
  });

  it("remove a profile and clear active when it named it", async () => {
    await writeProfile(home, "a", { env: "a" }, { activate: true });
    await writeProfile(home, "b", { env: "b" });
    await removeProfile(home, "a");
    expect(await readProfiles(home)).toEqual({ path: join(home, "config.toml"), profiles: { b: { env: "b" } } });
    await expect(removeProfile(home, "a")).rejects.toThrow(/no profile "a".*"b"/);
  });
});
