import { createCipheriv, createDecipheriv, createHash, randomBytes } from "node:crypto";
import { chmod, type FileHandle, link, mkdir, open, readFile, rename, unlink } from "node:fs/promises";
import { dirname } from "node:path";

const KEY_BYTES = 32;
const NONCE_BYTES = 12;
const TAG_BYTES = 16;
/** The first byte of every sealed value: the format, so that a later one can be told apart. */
const FORMAT_V1 = 1;
const HEX_KEY = /^[0-9a-fA-F]{64}$/;
/** 32 bytes in base64, standard or URL-safe, padded or not. */
const BASE64_KEY = /^[A-Za-z0-9+/_-]{43}=?$/;
const KEY_FORMAT = "32 bytes written as 64 hex characters or as base64 (generate one with `openssl rand -hex 32`)";

/** A sealed value failed to open: it was altered, sealed for another row, or sealed under another key. */
export class SecretTamperedError extends Error {
  constructor(
    /** The additional data it was opened with, which names the row. */
    readonly aad: string,
    options?: { cause?: unknown },
  ) {
    super(`the sealed value of ${aad} failed its integrity check`, options);
    this.name = "SecretTamperedError";
  }
}

/**
 * Seals and opens values with AES-256-GCM under one master key. A sealed value is a format byte, a random
 * 12-byte nonce, the ciphertext and the 16-byte tag. The additional data (`aad`) is authenticated but not
 * stored: it binds a sealed value to its row, so one copied to another row does not open there.
 *
 * @example
 * const box = await SecretBox.load({ env: process.env.SKIFF_MASTER_KEY, keyFile: join(home, "master.key") });
 * const sealed = box.seal(new TextEncoder().encode("hunter2"), "ws-local/main/db");
 * box.open(sealed, "ws-local/main/db"); // the bytes of "hunter2"
 */
export class SecretBox {
  /** A private field, so that logging or inspecting a box never shows the key. */
  readonly #key: Buffer;
  /** A short fingerprint of the key, not secret: tells which key sealed a row. */
  readonly keyId: string;

  private constructor(key: Buffer) {
    this.#key = key;
    this.keyId = createHash("sha256").update("skiff-key-id").update(key).digest("hex").slice(0, 16);
  }

  static fromKey(key: Uint8Array): SecretBox {
    if (key.byteLength !== KEY_BYTES) throw new Error(`a master key is ${KEY_BYTES} bytes, not ${key.byteLength}`);
    return new SecretBox(Buffer.from(key));
  }

  /** A box under a fresh random key, e.g. to rotate to. */
  static generate(): SecretBox {
    return new SecretBox(randomBytes(KEY_BYTES));
  }

  /**
   * The box of the server's master key: `env` (the value of SKIFF_MASTER_KEY) when set, else the key in
   * `keyFile`, created with mode 0600 on first use. An existing key file is never overwritten, and one
   * that other users can read is refused.
   */
  static async load(options: { env?: string | undefined; keyFile: string }): Promise<SecretBox> {
    if (options.env !== undefined && options.env.trim() !== "") {
      return new SecretBox(parseKey(options.env, `SKIFF_MASTER_KEY must be ${KEY_FORMAT}`));
    }
    return new SecretBox(await readOrCreateKeyFile(options.keyFile));
  }

  /**
   * Replaces the key in the key file `path` with `box`'s, keeping the old one as `${path}.previous`. The
   * order is what makes a crash at any point leave a key on disk that opens the data:
   * 1. the new key is written in full to `${path}.tmp` (mode 0600) and synced: `path` still holds the old key;
   * 2. `${path}.previous` is linked to the old file (mode 0600): both names hold the old key;
   * 3. `${path}.tmp` is renamed over `path`, which is atomic: it holds the old key or the new one.
   * Call it before SecretStore.rotate(box). Until that commits the data opens with `${path}.previous` (move
   * it back to `path` if it never does); once it has, delete `${path}.previous`. A `.previous` that holds
   * another key than `path`, left by a rotation that may not have finished, is never overwritten.
   *
   * @example
   * const next = SecretBox.generate();
   * await SecretBox.writeKeyFile(keyFile, next);
   * await secrets.rotate(next);
   * await unlink(`${keyFile}.previous`);
   */
  static async writeKeyFile(path: string, box: SecretBox): Promise<void> {
    const previous = `${path}.previous`;
    const temporary = `${path}.tmp`;
    const current = await readIfExists(path);
    const kept = await readIfExists(previous);
    if (kept) {
      if (!current?.equals(kept)) {
        throw new Error(
          `${previous} holds another key than ${path}, so an earlier rotation may not have finished: if the server's secrets open with ${path}, delete ${previous}; if not, move ${previous} back to ${path}. Then rotate again`,
        );
      }
      // Left by a crash before the rename: it holds the key that `path` still holds.
      await unlink(previous);
    }
    await mkdir(dirname(path), { recursive: true, mode: 0o700 });
    await unlink(temporary).catch(ignoreMissing);
    await writeNewFile(temporary, `${box.exportKey()}\n`);
    if (current) {
      await link(path, previous);
      await chmod(previous, 0o600);
      await syncDirectory(dirname(path));
    }
    await rename(temporary, path);
    await syncDirectory(dirname(path));
  }

  /** The key as 64 hex characters, to write to a key file or SKIFF_MASTER_KEY (after a rotation). */
  exportKey(): string {
    return this.#key.toString("hex");
  }

  seal(plaintext: Uint8Array, aad: string): Uint8Array {
    const nonce = randomBytes(NONCE_BYTES);
    const cipher = createCipheriv("aes-256-gcm", this.#key, nonce);
    cipher.setAAD(additionalData(aad));
    const body = Buffer.concat([cipher.update(plaintext), cipher.final()]);
    const sealed = new Uint8Array(1 + NONCE_BYTES + body.byteLength + TAG_BYTES);
    sealed[0] = FORMAT_V1;
    sealed.set(nonce, 1);
    sealed.set(body, 1 + NONCE_BYTES);
    sealed.set(cipher.getAuthTag(), 1 + NONCE_BYTES + body.byteLength);
    return sealed;
  }

  /** The plaintext of a sealed value; throws SecretTamperedError unless it was sealed by this key with `aad`. */
  open(sealed: Uint8Array, aad: string): Uint8Array {
    const bytes = Buffer.from(sealed.buffer, sealed.byteOffset, sealed.byteLength);
    if (bytes.byteLength < 1 + NONCE_BYTES + TAG_BYTES || bytes[0] !== FORMAT_V1) throw new SecretTamperedError(aad);
    const decipher = createDecipheriv("aes-256-gcm", this.#key, bytes.subarray(1, 1 + NONCE_BYTES));
    decipher.setAAD(additionalData(aad));
    decipher.setAuthTag(bytes.subarray(bytes.byteLength - TAG_BYTES));
    try {
      const plain = Buffer.concat([decipher.update(bytes.subarray(1 + NONCE_BYTES, -TAG_BYTES)), decipher.final()]);
      return new Uint8Array(plain.buffer, plain.byteOffset, plain.byteLength);
    } catch (error) {
      throw new SecretTamperedError(aad, { cause: error });
    }
  }
}

/** The format byte is authenticated too, so that it cannot be changed to have the value read another way. */
function additionalData(aad: string): Buffer {
  return Buffer.concat([Buffer.of(FORMAT_V1), Buffer.from(aad, "utf8")]);
}

/** Parses a key written as hex or base64; the message never repeats the text, which may be nearly a key. */
function parseKey(text: string, message: string): Buffer {
  const trimmed = text.trim();
  if (HEX_KEY.test(trimmed)) return Buffer.from(trimmed, "hex");
  if (BASE64_KEY.test(trimmed)) {
    // Node's base64 decoder reads the URL-safe alphabet too.
    const key = Buffer.from(trimmed, "base64");
    if (key.byteLength === KEY_BYTES) return key;
  }
  throw new Error(`${message}; got ${trimmed.length} characters that are neither`);
}

async function readOrCreateKeyFile(path: string): Promise<Buffer> {
  const existing = await readKeyFile(path);
  if (existing) return existing;
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  // Written in full under another name, then linked into place: linking fails if the file exists, so
  // two servers starting at once agree on one key, and none ever reads a half-written file.
  const temporary = `${path}.${randomBytes(6).toString("hex")}.tmp`;
  try {
    await writeNewFile(temporary, `${randomBytes(KEY_BYTES).toString("hex")}\n`);
    await link(temporary, path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
  } finally {
    await unlink(temporary).catch(() => {});
  }
  const created = await readKeyFile(path);
  if (!created) throw new Error(`the master key file ${path} vanished while it was being created`);
  return created;
}

/** Writes `text` to a file that must not exist yet, readable by its owner only, and syncs it. */
async function writeNewFile(path: string, text: string): Promise<void> {
  const file = await open(path, "wx", 0o600);
  try {
    await file.writeFile(text);
    await file.sync();
  } finally {
    await file.close();
  }
}

/** Makes the names created or renamed in a directory survive a crash. */
async function syncDirectory(path: string): Promise<void> {
  // Windows cannot open a directory to sync it.
  if (process.platform === "win32") return;
  const directory = await open(path, "r");
  try {
    await directory.sync();
  } finally {
    await directory.close();
  }
}

async function readIfExists(path: string): Promise<Buffer | undefined> {
  return readFile(path).catch((error: NodeJS.ErrnoException) => {
    if (error.code === "ENOENT") return undefined;
    throw error;
  });
}

function ignoreMissing(error: NodeJS.ErrnoException): void {
  if (error.code !== "ENOENT") throw error;
}

async function readKeyFile(path: string): Promise<Buffer | undefined> {
  let file: FileHandle;
  try {
    file = await open(path, "r");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw error;
  }
  try {
    // Checked on the open file, so that what is read is what was checked.
    const mode = (await file.stat()).mode;
    if (process.platform !== "win32" && (mode & 0o077) !== 0) {
      throw new Error(
        `the master key file ${path} can be read or changed by other users (mode ${(mode & 0o777).toString(8)}): run \`chmod 600 ${path}\``,
      );
    }
    return parseKey(await file.readFile("utf8"), `the master key file ${path} must hold ${KEY_FORMAT}`);
  } finally {
    await file.close();
  }
}
