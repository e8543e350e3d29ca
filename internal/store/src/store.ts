import { AppStore } from "./apps.js";
import { BlobIndexStore } from "./blobs.js";
import { CallStore } from "./calls.js";
import type { Db } from "./db.js";
import { FleetStore } from "./fleet.js";
import { ScheduleStore } from "./schedules.js";
import { migrate } from "./schema.js";
import type { SecretBox } from "./secret-box.js";
import { SecretStore } from "./secrets.js";
import { TokenStore } from "./tokens.js";
import { VolumeStore } from "./volumes.js";

/** How a store is opened. */
export interface StoreOptions {
  /** The master key secrets are sealed with; a store opened without one keeps no secrets. */
  box?: SecretBox;
  /** The most bytes a workspace's volumes may hold (their latest versions' files); unlimited without. */
  volumeQuotaBytes?: number;
}

/**
 * Everything Skiff persists, over one Db: one store per aggregate, all opened here at once.
 *
 * @example
 * const store = new Store(await openPglite(dataDir), { box: await SecretBox.load({ keyFile }) });
 * await store.migrate();
 * const { app } = await store.apps.deploy({ workspace, name: "svc", env: "main", bundleHash, functions });
 */
export class Store {
  /** Apps, their versions and their functions. */
  readonly apps: AppStore;
  /** Calls, their inputs and their results. */
  readonly calls: CallStore;
  /** Who may read which blob, and which blob holds which image layer. */
  readonly blobs: BlobIndexStore;
  /** Workers and their containers. */
  readonly fleet: FleetStore;
  /** Workspaces and their API tokens. */
  readonly tokens: TokenStore;
  /** The schedules of deployed functions. */
  readonly schedules: ScheduleStore;
  /** Volumes, their versions and their files. */
  readonly volumes: VolumeStore;
  readonly #secrets: SecretStore | undefined;

  constructor(
    readonly db: Db,
    options: StoreOptions = {},
  ) {
    this.apps = new AppStore(db);
    this.calls = new CallStore(db);
    this.blobs = new BlobIndexStore(db);
    this.fleet = new FleetStore(db);
    this.tokens = new TokenStore(db);
    this.schedules = new ScheduleStore(db);
    this.volumes = new VolumeStore(db, options.volumeQuotaBytes);
    this.#secrets = options.box ? new SecretStore(db, options.box) : undefined;
  }

  /** Environments and their secrets; only a store opened with a master key (`box`) has them. */
  get secrets(): SecretStore {
    if (!this.#secrets) throw new Error("this store was opened without a master key: give new Store() a box");
    return this.#secrets;
  }

  /** Brings the schema up to date; running it again changes nothing. */
  async migrate(): Promise<void> {
    await migrate(this.db);
  }

  async close(): Promise<void> {
    await this.db.close();
  }
}
