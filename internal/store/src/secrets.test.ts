import { randomBytes, randomUUID } from "node:crypto";
import { chmod, mkdtemp, readFile, rm, stat, unlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { inspect } from "node:util";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { SealSecrets } from "./apps.js";
import type { Db } from "./db.js";
import { openLocalSecrets, sealLocalSecrets } from "./local-secrets.js";
import { openPglite } from "./pglite/driver.js";
import { openPostgres } from "./postgres/driver.js";
import { migrate } from "./schema.js";
import { SecretBox, SecretTamperedError } from "./secret-box.js";
import { SecretError } from "./secret-error.js";
import { LOCAL_WORKSPACE, MAX_SECRET_BYTES, type SecretStore } from "./secrets.js";
import { Store } from "./store.js";
import { createTestDatabase, postgresReachable } from "./testing/postgres-fixture.js";

const utf8 = (text: string) => new TextEncoder().encode(text);

/** Runs `fn`, which must throw a SecretError, and returns it. */
async function refusal(fn: () => Promise<unknown>): Promise<SecretError> {
  try {
    await fn();
  } catch (error) {
    expect(error).toBeInstanceOf(SecretError);
    return error as SecretError;
  }
  throw new Error("expected a SecretError, but nothing was thrown");
}

/** Everything an error could show in a log line: message, stack and causes. */
const shown = (error: unknown) => `${String(error)}\n${inspect(error, { depth: 5 })}\n${JSON.stringify(error)}`;

describe("SecretBox", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "skiff-secret-box-"));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("seals with a random nonce and opens only with the same key and additional data", () => {
    const box = SecretBox.generate();
    const plaintext = utf8("hunter2");
    const sealed = box.seal(plaintext, "ws-local/main/db");
    expect(sealed.byteLength).toBe(1 + 12 + plaintext.byteLength + 16);
    expect(sealed[0]).toBe(1);
    expect(Buffer.from(box.seal(plaintext, "ws-local/main/db")).equals(Buffer.from(sealed))).toBe(false);
    expect(box.open(sealed, "ws-local/main/db")).toEqual(plaintext);
    expect(box.open(Buffer.from(sealed), "ws-local/main/db")).toEqual(plaintext);

    expect(() => box.open(sealed, "ws-local/main/other")).toThrow(SecretTamperedError);
    expect(() => SecretBox.generate().open(sealed, "ws-local/main/db")).toThrow(SecretTamperedError);
    for (const at of [0, 1, 13, sealed.byteLength - 1]) {
      const flipped = Uint8Array.from(sealed);
      flipped[at]! ^= 0x01;
      expect(() => box.open(flipped, "ws-local/main/db")).toThrow(/ws-local\/main\/db failed its integrity check/);
    }
    expect(() => box.open(sealed.subarray(0, 20), "ws-local/main/db")).toThrow(SecretTamperedError);
  });

  it("names its key by a short fingerprint and never shows the key", () => {
    const key = randomBytes(32);
    const box = SecretBox.fromKey(key);
    expect(box.keyId).toMatch(/^[0-9a-f]{16}$/);
    expect(SecretBox.fromKey(Uint8Array.from(key)).keyId).toBe(box.keyId);
    expect(SecretBox.generate().keyId).not.toBe(box.keyId);
    expect(key.toString("hex")).not.toContain(box.keyId);
    expect(inspect(box, { showHidden: true, depth: 5 })).not.toContain(key.toString("hex"));
    expect(JSON.stringify(box)).not.toContain(key.toString("hex"));
    expect(box.exportKey()).toBe(key.toString("hex"));
    expect(() => SecretBox.fromKey(randomBytes(31))).toThrow(/32 bytes, not 31/);
  });

  it("takes SKIFF_MASTER_KEY as hex or base64, before any key file", async () => {
    const key = randomBytes(32);
    const keyFile = join(dir, "unused", "master.key");
    const expected = SecretBox.fromKey(key).keyId;
    for (const env of [
      key.toString("hex"),
      key.toString("hex").toUpperCase(),
      key.toString("base64"),
      key.toString("base64").replace(/=$/, ""),
      key.toString("base64url"),
      ` ${key.toString("hex")}\n`,
    ]) {
      expect((await SecretBox.load({ env, keyFile })).keyId).toBe(expected);
    }
    await expect(stat(keyFile)).rejects.toThrow(/ENOENT/);
  });

  it("refuses a SKIFF_MASTER_KEY of another format, saying which it expects and not repeating it", async () => {
    const keyFile = join(dir, "unused", "master.key");
    for (const env of [
      "correct horse battery staple",
      randomBytes(31).toString("hex"),
      randomBytes(33).toString("hex"),
      randomBytes(31).toString("base64"),
      `${randomBytes(32).toString("hex").slice(0, 63)}g`,
    ]) {
      const error = await SecretBox.load({ env, keyFile }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(Error);
      expect((error as Error).message).toMatch(
        /SKIFF_MASTER_KEY must be 32 bytes written as 64 hex characters or as base64/,
      );
      expect(shown(error)).not.toContain(env);
    }
  });

  it("creates the key file with mode 0600 on first use and reuses it", async () => {
    const keyFile = join(dir, "home", "master.key");
    const first = await SecretBox.load({ keyFile });
    expect((await stat(keyFile)).mode & 0o777).toBe(0o600);
    const written = await readFile(keyFile, "utf8");
    expect(written).toMatch(/^[0-9a-f]{64}\n$/);
    expect(SecretBox.fromKey(Buffer.from(written.trim(), "hex")).keyId).toBe(first.keyId);

    const again = await SecretBox.load({ keyFile, env: "" });
    expect(again.keyId).toBe(first.keyId);
    expect(await readFile(keyFile, "utf8")).toBe(written);
  });

  it("agrees on one key when several servers create the key file at once", async () => {
    const keyFile = join(dir, "race", "master.key");
    const boxes = await Promise.all(Array.from({ length: 8 }, () => SecretBox.load({ keyFile })));
    expect(new Set(boxes.map((box) => box.keyId)).size).toBe(1);
    expect(SecretBox.fromKey(Buffer.from((await readFile(keyFile, "utf8")).trim(), "hex")).keyId).toBe(boxes[0]!.keyId);
  });

  it("reads an existing key file, and refuses one other users can read or a malformed one", async () => {
    const key = randomBytes(32);
    const keyFile = join(dir, "existing.key");
    await writeFile(keyFile, key.toString("base64"), { mode: 0o600 });
    expect((await SecretBox.load({ keyFile })).keyId).toBe(SecretBox.fromKey(key).keyId);

    await chmod(keyFile, 0o644);
    await expect(SecretBox.load({ keyFile })).rejects.toThrow(`run \`chmod 600 ${keyFile}\``);
    await chmod(keyFile, 0o640);
    await expect(SecretBox.load({ keyFile })).rejects.toThrow(/can be read or changed by other users \(mode 640\)/);
    expect(await readFile(keyFile, "utf8")).toBe(key.toString("base64"));

    const bad = join(dir, "bad.key");
    await writeFile(bad, "not a key\n", { mode: 0o600 });
    await expect(SecretBox.load({ keyFile: bad })).rejects.toThrow(
      `the master key file ${bad} must hold 32 bytes written as 64 hex characters or as base64`,
    );
    expect(await readFile(bad, "utf8")).toBe("not a key\n");
  });
  it("replaces a key file, keeping the old key as .previous until the caller deletes it", async () => {
    const keyFile = join(dir, "rotate", "master.key");
    const previous = `${keyFile}.previous`;
    const old = await SecretBox.load({ keyFile });
    const oldText = await readFile(keyFile, "utf8");
    const next = SecretBox.generate();
    await SecretBox.writeKeyFile(keyFile, next);
    expect(await readFile(keyFile, "utf8")).toBe(`${next.exportKey()}\n`);
    expect((await stat(keyFile)).mode & 0o777).toBe(0o600);
    expect((await SecretBox.load({ keyFile })).keyId).toBe(next.keyId);
    expect(await readFile(previous, "utf8")).toBe(oldText);
    expect((await stat(previous)).mode & 0o777).toBe(0o600);
    expect((await SecretBox.load({ keyFile: previous })).keyId).toBe(old.keyId);
    await expect(stat(`${keyFile}.tmp`)).rejects.toThrow(/ENOENT/);

    // .previous may hold the only key that opens the data until rotate commits: never overwritten.
    await expect(SecretBox.writeKeyFile(keyFile, SecretBox.generate())).rejects.toThrow(
      `${previous} holds another key than ${keyFile}, so an earlier rotation may not have finished`,
    );
    expect(await readFile(keyFile, "utf8")).toBe(`${next.exportKey()}\n`);
    expect(await readFile(previous, "utf8")).toBe(oldText);

    // What a crash before the rename leaves: a stale .tmp, and a .previous that holds the current key.
    await unlink(previous);
    await writeFile(previous, `${next.exportKey()}\n`, { mode: 0o600 });
    await writeFile(`${keyFile}.tmp`, "half a k", { mode: 0o644 });
    const third = SecretBox.generate();
    await SecretBox.writeKeyFile(keyFile, third);
    expect((await SecretBox.load({ keyFile })).keyId).toBe(third.keyId);
    expect((await SecretBox.load({ keyFile: previous })).keyId).toBe(next.keyId);
    expect((await stat(keyFile)).mode & 0o777).toBe(0o600);

    const fresh = join(dir, "fresh", "master.key");
    await SecretBox.writeKeyFile(fresh, third);
    expect((await SecretBox.load({ keyFile: fresh })).keyId).toBe(third.keyId);
    await expect(stat(`${fresh}.previous`)).rejects.toThrow(/ENOENT/);
  });
});

interface Opened {
  db: Db;
  dispose: () => Promise<void>;
}

/** One suite both drivers pass. */
function describeSecretStore(name: string, open: () => Promise<Opened>) {
  describe(`secret store on ${name}`, () => {
    let opened: Opened;
    let db: Db;
    let box: SecretBox;
    let secrets: SecretStore;
    /** A fresh environment per test, so that tests do not see each other's secrets. */
    let env: string;

    beforeAll(async () => {
      opened = await open();
      db = opened.db;
      await migrate(db);
    });
    afterAll(async () => {
      await db.close();
      await opened.dispose();
    });
    beforeEach(async () => {
      box = SecretBox.generate();
      secrets = new Store(db, { box }).secrets;
      env = `t-${randomUUID().slice(0, 8)}`;
      await secrets.createEnvironment(env);
    });

    const sealedOf = async (secret: string, inEnv = env) => {
      const [row] = await db.query<{ sealed: Uint8Array }>(
        "SELECT sealed FROM secrets WHERE workspace = $1 AND env = $2 AND name = $3",
        [LOCAL_WORKSPACE, inEnv, secret],
      );
      return Uint8Array.from(row!.sealed);
    };
    const setSealed = (secret: string, sealed: Uint8Array, inEnv = env) =>
      db.query("UPDATE secrets SET sealed = $4::bytea WHERE workspace = $1 AND env = $2 AND name = $3", [
        LOCAL_WORKSPACE,
        inEnv,
        secret,
        sealed,
      ]);

    const rowsAsText = async (table: "secrets" | "app_versions") =>
      (await db.query<{ row: string }>(`SELECT t::text AS row FROM ${table} t`)).map((row) => row.row).join("\n");
    /** Checks that no row of `table` holds `value`, as text or in any column's bytes. */
    const expectNowhere = async (table: "secrets" | "app_versions", value: string) => {
      const needles = [value, Buffer.from(value).toString("hex"), Buffer.from(value).toString("base64")];
      const rows = await db.query<Record<string, unknown>>(`SELECT * FROM ${table}`);
      expect(rows.length).toBeGreaterThan(0);
      const asText = await rowsAsText(table);
      for (const needle of needles) expect(asText).not.toContain(needle);
      for (const row of rows) {
        for (const [column, cell] of Object.entries(row)) {
          const bytes = cell instanceof Uint8Array ? Buffer.from(cell) : Buffer.from(JSON.stringify(cell) ?? "");
          for (const needle of needles) {
            expect(bytes.includes(Buffer.from(needle)), `${column} holds the value`).toBe(false);
            expect(bytes.toString("latin1"), `${column} holds the value`).not.toContain(needle);
          }
        }
      }
    };

    /** Apps made by a test, removed after it: a version left sealed with an unknown key would be skipped by every later rotation. */
    let apps: string[] = [];
    afterEach(async () => {
      await db.query("DELETE FROM app_versions WHERE app_id = ANY($1::text[])", [apps]);
      await db.query("DELETE FROM apps WHERE id = ANY($1::text[])", [apps]);
      apps = [];
    });
    /** An app whose version 1 has the local secret values `sealSecrets` seals; its id. */
    const appWith = async (sealSecrets: SealSecrets) => {
      const { app } = await new Store(db).apps.create({
        workspace: LOCAL_WORKSPACE,
        name: `a-${apps.length}`,
        env,
        mode: "detached",
        bundleHash: "h",
        functions: [],
        sealSecrets,
      });
      apps.push(app.id);
      return app.id;
    };
    const localOf = async (appId: string) => {
      const stored = await new Store(db).apps.localSecrets(appId, 1);
      return { sealed: Uint8Array.from(stored!.sealed), keyId: stored!.keyId };
    };
    /** As a version written before key ids were kept. */
    const forgetKeyId = (appId: string) =>
      db.query("UPDATE app_versions SET local_secrets_key_id = NULL WHERE app_id = $1", [appId]);

    it("never stores a value in plaintext", async () => {
      const value = `pw-${randomUUID()}`;
      const values = { DATABASE_URL: `postgres://app:${value}@db/app`, API_TOKEN: value };
      await secrets.create(env, "db", values);
      expect(await secrets.get(env, "db")).toEqual(values);

      expect(await rowsAsText("secrets")).toContain("DATABASE_URL");
      await expectNowhere("secrets", value);
    });

    it("lists names and keys, never values", async () => {
      const value = `v-${randomUUID()}`;
      await secrets.create(env, "b", { ONE: value, TWO: value });
      await secrets.create(env, "a", { THREE: value });
      const listed = await secrets.list(env);
      expect(listed.map((s) => [s.name, s.keys])).toEqual([
        ["a", ["THREE"]],
        ["b", ["ONE", "TWO"]],
      ]);
      for (const summary of listed) {
        expect(Object.keys(summary).sort()).toEqual(["createdAt", "keys", "name", "updatedAt"]);
        expect(summary.createdAt).toBeInstanceOf(Date);
        expect(summary.updatedAt).toBeInstanceOf(Date);
      }
      expect(JSON.stringify(listed)).not.toContain(value);
      expect(await secrets.list("main", "ws-elsewhere")).toEqual([]);
    });

    it("gets one secret or several in one call, and deletes", async () => {
      await secrets.create(env, "a", { A: "1" });
      await secrets.create(env, "b", { B: "2", C: "3" });
      expect(await secrets.get(env, "b")).toEqual({ B: "2", C: "3" });
      expect(await secrets.get(env, "missing")).toBeUndefined();
      expect(await secrets.get("main", "a")).toBeUndefined();
      const many = await secrets.getMany(env, ["a", "b", "missing"]);
      expect([...many.entries()].sort()).toEqual([
        ["a", { A: "1" }],
        ["b", { B: "2", C: "3" }],
      ]);
      expect((await secrets.getMany(env, [])).size).toBe(0);
      expect(await secrets.delete(env, "a")).toBe(true);
      expect(await secrets.delete(env, "a")).toBe(false);
      expect(await secrets.get(env, "a")).toBeUndefined();
    });

    it("refuses an existing name unless told to overwrite, and keeps its creation time when it does", async () => {
      const first = await secrets.create(env, "db", { URL: "one" });
      const conflict = await refusal(() => secrets.create(env, "db", { URL: "two" }));
      expect(conflict.code).toBe("CONFLICT");
      expect(conflict.message).toBe(
        `secret "db" already exists in environment "${env}": delete it first, or overwrite it`,
      );
      expect(await secrets.get(env, "db")).toEqual({ URL: "one" });

      const replaced = await secrets.create(env, "db", { URL: "two", USER: "app" }, { overwrite: true });
      expect(replaced.keys).toEqual(["URL", "USER"]);
      expect(replaced.createdAt).toEqual(first.createdAt);
      expect(replaced.updatedAt.getTime()).toBeGreaterThanOrEqual(first.updatedAt.getTime());
      expect(await secrets.get(env, "db")).toEqual({ URL: "two", USER: "app" });
    });

    it("validates names, keys and sizes, and refuses an unknown environment", async () => {
      const bad = async (fn: () => Promise<unknown>, code: SecretError["code"], message: RegExp) => {
        const error = await refusal(fn);
        expect(error.code).toBe(code);
        expect(error.message).toMatch(message);
      };
      for (const name of ["", "-db", "_db", "a b", "a.b", "a/b", "x".repeat(64)]) {
        await bad(() => secrets.create(env, name, { A: "1" }), "BAD_REQUEST", /secret name .* is not valid/);
      }
      await secrets.create(env, "x".repeat(63), { A: "1" });
      await secrets.create(env, "9_a-B", { _A: "1" });
      await bad(() => secrets.create(env, "empty", {}), "BAD_REQUEST", /needs at least one key/);
      for (const key of ["1A", "A-B", "A B", ""]) {
        await bad(() => secrets.create(env, "k", { [key]: "1" }), "BAD_REQUEST", /is not an environment variable name/);
      }
      await bad(() => secrets.create(env, "k", { SKIFF_TOKEN: "1" }), "BAD_REQUEST", /"SKIFF_TOKEN" is reserved/);
      await bad(
        () => secrets.create(env, "k", { A: 1 } as unknown as Record<string, string>),
        "BAD_REQUEST",
        /the value of key "A" must be a string/,
      );
      await bad(
        () => secrets.create(env, "k", null as unknown as Record<string, string>),
        "BAD_REQUEST",
        /values must be an object/,
      );
      await bad(
        () => secrets.create(env, "big", { A: "x".repeat(MAX_SECRET_BYTES) }),
        "BAD_REQUEST",
        /a secret holds at most 64 KiB/,
      );
      await secrets.create(env, "fits", { A: "x".repeat(MAX_SECRET_BYTES - '{"A":""}'.length) });
      await bad(
        () => secrets.create("nowhere", "k", { A: "1" }),
        "NOT_FOUND",
        /environment "nowhere" does not exist: create it first/,
      );
      await bad(() => secrets.create(env, "k", { A: "1" }, { workspace: "ws-other" }), "NOT_FOUND", /does not exist/);
      expect((await secrets.list(env)).map((s) => s.name).sort()).toEqual(["9_a-B", "fits", "x".repeat(63)]);
    });

    it("rejects a tampered ciphertext with an error naming the secret", async () => {
      const value = `v-${randomUUID()}`;
      await secrets.create(env, "db", { URL: value });
      const sealed = await sealedOf("db");
      for (const at of [0, 5, 20, sealed.byteLength - 1]) {
        const flipped = Uint8Array.from(sealed);
        flipped[at]! ^= 0x80;
        await setSealed("db", flipped);
        const error = await refusal(() => secrets.get(env, "db"));
        expect(error.code).toBe("UNREADABLE");
        expect(error.message).toBe(
          `secret "db" in environment "${env}" failed its integrity check: its stored value was altered or belongs to another secret; set it again`,
        );
        expect(error.cause).toBeInstanceOf(SecretTamperedError);
        expect(shown(error)).not.toContain(value);
        await expect(secrets.getMany(env, ["db"])).rejects.toThrow(/"db" .* failed its integrity check/);
      }
      await setSealed("db", sealed);
      expect(await secrets.get(env, "db")).toEqual({ URL: value });
    });

    it("does not open a ciphertext moved to another secret's row", async () => {
      await secrets.create(env, "a", { KEY: "value of a" });
      await secrets.create(env, "b", { KEY: "value of b" });
      const other = `t-${randomUUID().slice(0, 8)}`;
      await secrets.createEnvironment(other);
      await secrets.create(other, "a", { KEY: "value of a elsewhere" });

      await setSealed("b", await sealedOf("a"));
      await expect(secrets.get(env, "b")).rejects.toThrow(/secret "b" .* failed its integrity check/);
      await setSealed("a", await sealedOf("a"), other);
      await expect(secrets.get(other, "a")).rejects.toThrow(/secret "a" .* failed its integrity check/);
      expect(await secrets.get(env, "a")).toEqual({ KEY: "value of a" });
    });

    it("rotates the master key: every row is sealed again under the new one", async () => {
      await secrets.create(env, "a", { A: "1" });
      await secrets.create(env, "b", { B: "2" });
      const other = new Store(db, { box: SecretBox.generate() }).secrets;
      await other.create(env, "c", { C: "3" });
      const before = { a: await sealedOf("a"), b: await sealedOf("b") };

      const next = SecretBox.generate();
      expect(await secrets.rotate(next)).toEqual({ secrets: 2, localSecrets: 0, skipped: 0 });
      expect(secrets.box).toBe(next);
      const rows = await db.query<{ name: string; key_id: string; sealed: Uint8Array }>(
        "SELECT name, key_id, sealed FROM secrets WHERE env = $1 ORDER BY name",
        [env],
      );
      expect(rows.map((row) => [row.name, row.key_id])).toEqual([
        ["a", next.keyId],
        ["b", next.keyId],
        ["c", other.box.keyId],
      ]);
      for (const row of rows.slice(0, 2)) {
        const aad = `${LOCAL_WORKSPACE}/${env}/${row.name}`;
        expect(() => box.open(row.sealed, aad)).toThrow(SecretTamperedError);
        expect(JSON.parse(new TextDecoder().decode(next.open(row.sealed, aad)))).toEqual(
          row.name === "a" ? { A: "1" } : { B: "2" },
        );
        expect(Buffer.from(row.sealed).equals(Buffer.from(before[row.name as "a" | "b"]))).toBe(false);
      }
      expect(await secrets.get(env, "a")).toEqual({ A: "1" });
      await secrets.create(env, "d", { D: "4" });
      expect(await secrets.getMany(env, ["b", "d"])).toEqual(
        new Map([
          ["b", { B: "2" }],
          ["d", { D: "4" }],
        ]),
      );
      expect(await secrets.rotate(next)).toEqual({ secrets: 0, localSecrets: 0, skipped: 0 });

      // The old key opens nothing any more, and says so.
      const stale = await refusal(() => new Store(db, { box }).secrets.get(env, "a"));
      expect(stale.code).toBe("UNREADABLE");
      expect(stale.message).toContain(
        `secret "a" in environment "${env}" was sealed with master key ${next.keyId}, but the server's key is ${box.keyId}`,
      );
      expect(await other.get(env, "c")).toEqual({ C: "3" });
    });

    it("rotates apps' local secret values with the secrets, and a second rotation re-seals nothing", async () => {
      const value = `pw-${randomUUID()}`;
      const values = (n: number) => ({ [`local-${n}`]: { TOKEN: `${value}-${n}` } });
      await secrets.create(env, "db", { URL: value });
      const current = await appWith(sealLocalSecrets(box, values(1)));
      const legacy = await appWith(sealLocalSecrets(box, values(2)));
      await forgetKeyId(legacy);
      const stranger = SecretBox.generate();
      const foreign = await appWith(sealLocalSecrets(stranger, values(3)));
      const lost = await appWith(sealLocalSecrets(stranger, values(4)));
      await forgetKeyId(lost);
      expect((await localOf(current)).keyId).toBe(box.keyId);
      expect(openLocalSecrets(box, current, 1, await localOf(current))).toEqual(values(1));
      expect(openLocalSecrets(box, legacy, 1, await localOf(legacy))).toEqual(values(2));
      const before = { foreign: await localOf(foreign), lost: await localOf(lost) };

      const next = SecretBox.generate();
      expect(await secrets.rotate(next)).toEqual({ secrets: 1, localSecrets: 2, skipped: 1 });
      for (const [appId, n] of [
        [current, 1],
        [legacy, 2],
      ] as const) {
        const stored = await localOf(appId);
        expect(stored.keyId).toBe(next.keyId);
        expect(openLocalSecrets(next, appId, 1, stored)).toEqual(values(n));
        const stale = (() => {
          try {
            openLocalSecrets(box, appId, 1, stored);
          } catch (error) {
            return error as SecretError;
          }
        })();
        expect(stale).toBeInstanceOf(SecretError);
        expect(stale!.code).toBe("UNREADABLE");
        expect(stale!.message).toBe(
          `the local secret values of version 1 of app ${appId} were sealed with master key ${next.keyId}, but the server's key is ${box.keyId}: start the server with the key they were sealed with (SKIFF_MASTER_KEY or the master key file), or deploy the app again with its local secret values`,
        );
      }
      // Sealed with a key that is not the old one: left exactly as they were, not destroyed.
      expect(await localOf(foreign)).toEqual(before.foreign);
      expect(openLocalSecrets(stranger, foreign, 1, await localOf(foreign))).toEqual(values(3));
      expect(await localOf(lost)).toEqual(before.lost);
      expect(openLocalSecrets(stranger, lost, 1, await localOf(lost))).toEqual(values(4));
      expect(() => openLocalSecrets(next, lost, 1, before.lost)).toThrow(
        `the local secret values of version 1 of app ${lost} do not open with master key ${next.keyId}: they were sealed before key ids were kept`,
      );
      await expectNowhere("app_versions", value);
      await expectNowhere("secrets", value);

      expect(await secrets.rotate(next)).toEqual({ secrets: 0, localSecrets: 0, skipped: 0 });
      // A replica that still holds the old key finds nothing of its own left.
      expect(await new Store(db, { box }).secrets.rotate(next)).toEqual({ secrets: 0, localSecrets: 0, skipped: 1 });
      expect(openLocalSecrets(next, current, 1, await localOf(current))).toEqual(values(1));
      expect(await localOf(lost)).toEqual(before.lost);
    });

    it("rolls a rotation back when a row sealed with the old key fails its integrity check", async () => {
      await secrets.create(env, "db", { URL: "x" });
      const appId = await appWith(sealLocalSecrets(box, { "local-1": { TOKEN: "t" } }));
      const stored = await localOf(appId);
      stored.sealed[stored.sealed.byteLength - 1]! ^= 1;
      await db.query("UPDATE app_versions SET local_secrets = $2::bytea WHERE app_id = $1", [appId, stored.sealed]);

      const error = await refusal(() => secrets.rotate(SecretBox.generate()));
      expect(error.code).toBe("UNREADABLE");
      expect(error.message).toBe(
        `the local secret values of version 1 of app ${appId} failed their integrity check: the stored value was altered or belongs to another version; or deploy the app again with its local secret values`,
      );
      expect(secrets.box).toBe(box);
      expect(await secrets.get(env, "db")).toEqual({ URL: "x" });
      expect(await localOf(appId)).toEqual(stored);
    });

    it("never puts a value in an error", async () => {
      const value = `v-${randomUUID()}`;
      await secrets.create(env, "db", { URL: value });
      const errors = [
        await refusal(() => secrets.create(env, "db", { URL: value })),
        await refusal(() => secrets.create(env, "db", { "BAD KEY": value })),
        await refusal(() => secrets.create(env, "db", { SKIFF_URL: value })),
        await refusal(() => secrets.create(env, "db", { [`URL=${value}`]: value })),
        await refusal(() => secrets.create(env, "db", { URL: `${value}${"x".repeat(MAX_SECRET_BYTES)}` })),
        await refusal(() => secrets.create(env, "db", { URL: { value } as unknown as string })),
        await refusal(() => secrets.create("nowhere", "db", { URL: value })),
        await refusal(() => new Store(db, { box: SecretBox.generate() }).secrets.get(env, "db")),
      ];
      const sealed = await sealedOf("db");
      sealed[sealed.byteLength - 1]! ^= 1;
      await setSealed("db", sealed);
      errors.push(await refusal(() => secrets.get(env, "db")));
      expect(errors[3]!.message).toMatch(/a key \("URL"=…\) contains '=': give keys and values apart/);
      for (const error of errors) expect(shown(error)).not.toContain(value);
    });

    it("creates, lists and deletes environments", async () => {
      const name = `e-${randomUUID().slice(0, 8)}`;
      const created = await secrets.createEnvironment(name);
      expect(created.name).toBe(name);
      expect(created.createdAt).toBeInstanceOf(Date);
      expect(await secrets.hasEnvironment(name)).toBe(true);
      expect(await secrets.hasEnvironment(name, "ws-other")).toBe(false);
      const names = (await secrets.listEnvironments()).map((e) => e.name);
      expect(names).toContain("main");
      expect(names).toContain(name);
      expect(names).toEqual([...names].sort());
      expect(await secrets.listEnvironments("ws-other")).toEqual([]);

      const duplicate = await refusal(() => secrets.createEnvironment(name));
      expect(duplicate.code).toBe("CONFLICT");
      expect(duplicate.message).toBe(`environment "${name}" already exists`);
      for (const bad of ["", "-x", "a b", "a.b", "x".repeat(64)]) {
        const error = await refusal(() => secrets.createEnvironment(bad));
        expect(error.code).toBe("BAD_REQUEST");
        expect(error.message).toMatch(/environment name .* is not valid: use letters, digits, '-' and '_'/);
      }
      expect((await secrets.createEnvironment(`9${"x".repeat(62)}`)).name).toHaveLength(63);
      expect(await secrets.deleteEnvironment(`9${"x".repeat(62)}`)).toBe(true);

      const main = await refusal(() => secrets.deleteEnvironment("main"));
      expect(main.code).toBe("BAD_REQUEST");
      expect(main.message).toBe('the "main" environment cannot be deleted');

      const appId = `ap-${randomUUID()}`;
      await db.query(
        "INSERT INTO apps (id, workspace, name, env, mode, state, bundle_hash) VALUES ($1, $2, 'web', $3, 'deployed', 'running', 'h')",
        [appId, LOCAL_WORKSPACE, name],
      );
      await secrets.create(name, "db", { URL: "x" });
      const running = await refusal(() => secrets.deleteEnvironment(name));
      expect(running.code).toBe("CONFLICT");
      expect(running.message).toBe(
        `environment "${name}" still has running apps (web): stop them first with \`skiff app stop APP --env ${name}\``,
      );
      await db.query("UPDATE apps SET state = 'stopped' WHERE id = $1", [appId]);
      const withSecrets = await refusal(() => secrets.deleteEnvironment(name));
      expect(withSecrets.code).toBe("CONFLICT");
      expect(withSecrets.message).toBe(`environment "${name}" still has secrets (db): delete them first`);
      expect(await secrets.hasEnvironment(name)).toBe(true);

      await secrets.delete(name, "db");
      const volumes = new Store(db).volumes;
      await volumes.create({ workspace: LOCAL_WORKSPACE, env: name }, "data", { author: "t" });
      const withVolumes = await refusal(() => secrets.deleteEnvironment(name));
      expect(withVolumes.code).toBe("CONFLICT");
      expect(withVolumes.message).toBe(
        `environment "${name}" still has volumes (data): delete them first with \`skiff volume delete NAME --env ${name}\``,
      );
      await volumes.delete({ workspace: LOCAL_WORKSPACE, env: name }, "data");
      expect(await secrets.deleteEnvironment(name)).toBe(true);
      expect(await secrets.hasEnvironment(name)).toBe(false);
      expect(await secrets.deleteEnvironment(name)).toBe(false);
      await expect(secrets.create(name, "db", { URL: "x" })).rejects.toThrow(/does not exist/);
    });
  });
}

describeSecretStore("pglite", async () => ({ db: await openPglite(), dispose: async () => {} }));

describe("the environments migration", () => {
  it("creates main and the environments apps already run in", async () => {
    const db = await openPglite();
    try {
      await migrate(db);
      // Back to before it, with apps in two environments.
      await db.exec("DROP TABLE secrets; DROP TABLE environments; DELETE FROM schema_migrations WHERE version = 6");
      for (const env of ["main", "staging", "staging"]) {
        await db.query(
          "INSERT INTO apps (id, workspace, name, env, mode, state, bundle_hash) VALUES ($1, $2, 'a', $3, 'detached', 'stopped', 'h')",
          [`ap-${randomUUID()}`, LOCAL_WORKSPACE, env],
        );
      }
      await migrate(db);
      expect(await new Store(db, { box: SecretBox.generate() }).secrets.listEnvironments()).toEqual([
        { name: "main", createdAt: expect.any(Date) },
        { name: "staging", createdAt: expect.any(Date) },
      ]);
    } finally {
      await db.close();
    }
  });
});

describe.skipIf(!(await postgresReachable()))("postgres", () => {
  describeSecretStore("postgres", async () => {
    const database = await createTestDatabase();
    return { db: await openPostgres(database.url), dispose: database.drop };
  });
});
