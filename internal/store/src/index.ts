export type { Db } from "./db.js";
export { openPglite } from "./pglite/driver.js";
export { openPostgres } from "./postgres/driver.js";
export { type ScheduleOutcome, type ScheduleRow, ScheduleStore } from "./schedules.js";
export { migrate } from "./schema.js";
export * from "./store.js";
