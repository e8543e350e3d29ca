import { openPglite } from "./pglite/driver.js";
import { openPostgres } from "./postgres/driver.js";
import { describeStoreConformance } from "./store.conformance.js";
import { createTestDatabase } from "./testing/postgres-fixture.js";

describeStoreConformance("pglite", async () => ({ db: await openPglite(), dispose: async () => {} }));

describeStoreConformance("postgres", async () => {
  const database = await createTestDatabase();
  return { db: await openPostgres(database.url), dispose: database.drop };
});
