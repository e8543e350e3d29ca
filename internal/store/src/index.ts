export type { Db } from "./db.js";
export { openPglite } from "./pglite/driver.js";
export { openPostgres } from "./postgres/driver.js";
export { migrate } from "./schema.js";
export * from "./store.js";
