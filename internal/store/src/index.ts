export type { Db } from "./db.js";
export {
  type LocalSecretValues,
  openLocalSecrets,
  type SealedLocalSecrets,
  sealLocalSecrets,
} from "./local-secrets.js";
export { openPglite } from "./pglite/driver.js";
export { openPostgres } from "./postgres/driver.js";
export { type ScheduleOutcome, type ScheduleRow, ScheduleStore } from "./schedules.js";
export { migrate } from "./schema.js";
export { SecretBox, SecretTamperedError } from "./secret-box.js";
export {
  DEFAULT_ENVIRONMENT,
  type Environment,
  LOCAL_WORKSPACE,
  MAX_SECRET_BYTES,
  SecretError,
  SecretStore,
  type SecretSummary,
} from "./secrets.js";
export * from "./store.js";
export {
  type Principal,
  TokenError,
  type TokenKind,
  TokenStore,
  type TokenSummary,
  type Workspace,
} from "./tokens.js";
