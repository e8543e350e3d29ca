import type { Db } from "./db.js";

/**
 * What the database knows of the blobs in the blob store: which workspaces may read each one, and which
 * blob holds each image layer workers published.
 */
export class BlobIndexStore {
  constructor(private readonly db: Db) {}

  /** Records that these workspaces may read these blobs (they put them, or their functions returned them). */
  async grant(workspace: string, hashes: readonly string[]): Promise<void> {
    if (hashes.length === 0) return;
    await this.db.query(
      "INSERT INTO blob_owners (workspace, hash) SELECT $1, unnest($2::text[]) ON CONFLICT DO NOTHING",
      [workspace, [...new Set(hashes)]],
    );
  }

  /** Whether a workspace may read a blob: one it never put is "not there" to it, stored or not. */
  async owns(workspace: string, hash: string): Promise<boolean> {
    const rows = await this.db.query("SELECT 1 FROM blob_owners WHERE workspace = $1 AND hash = $2", [workspace, hash]);
    return rows.length > 0;
  }

  /** Those of `hashes` the workspace may not read (it never put them), in one query. */
  async notOwned(workspace: string, hashes: readonly string[]): Promise<string[]> {
    const unique = [...new Set(hashes)];
    if (unique.length === 0) return [];
    const rows = await this.db.query<{ hash: string }>(
      "SELECT hash FROM blob_owners WHERE workspace = $1 AND hash = ANY($2::text[])",
      [workspace, unique],
    );
    const owned = new Set(rows.map((row) => row.hash));
    return unique.filter((hash) => !owned.has(hash));
  }

  /** The blob holding the layer with this key, if a worker published it. */
  async findLayer(key: string): Promise<string | undefined> {
    const [row] = await this.db.query<{ digest: string }>("SELECT digest FROM image_layers WHERE key = $1", [key]);
    return row?.digest;
  }

  /** Records that the layer with this key is the blob `digest`; the first one published stays. */
  async publishLayer(key: string, digest: string): Promise<void> {
    await this.db.query("INSERT INTO image_layers (key, digest) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING", [
      key,
      digest,
    ]);
  }
}
