export type { AppRow, AppStore, AppVersion, FunctionRow, SealSecrets } from "./apps.js";
export type { BlobIndexStore } from "./blobs.js";
export {
  type CallStore,
  type FinishedInput,
  INPUT_ID_BLOCK,
  type InputChunk,
  type ProgressRecord,
  type ResultRecord,
  type UnfinishedInput,
  type WriteBatch,
} from "./calls.js";
export type { Db } from "./db.js";
export type { FleetStore, LiveContainer } from "./fleet.js";
export {
  type LocalSecretValues,
  openLocalSecrets,
  type SealedLocalSecrets,
  sealLocalSecrets,
} from "./local-secrets.js";
export { openPglite } from "./pglite/driver.js";
export { openPostgres } from "./postgres/driver.js";
export type { ScheduleOutcome, ScheduleRow, ScheduleStore } from "./schedules.js";
export type { Scope } from "./scope.js";
export { SecretBox, SecretTamperedError } from "./secret-box.js";
export { SecretError } from "./secret-error.js";
export {
  DEFAULT_ENVIRONMENT,
  type Environment,
  LOCAL_WORKSPACE,
  MAX_SECRET_BYTES,
  type SecretStore,
  type SecretSummary,
} from "./secrets.js";
export { Store, type StoreOptions } from "./store.js";
export {
  type Principal,
  TokenError,
  type TokenKind,
  type TokenStore,
  type TokenSummary,
  type Workspace,
} from "./tokens.js";
export {
  type VersionInfo,
  type VolumeChange,
  type VolumeEntry,
  VolumeError,
  type VolumeRow,
  type VolumeStore,
  type VolumeVersion,
} from "./volumes.js";
