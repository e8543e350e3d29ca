import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describeBlobStoreConformance } from "./blob-store.conformance.js";
import { FsBlobStore } from "./fs-blob-store.js";

describeBlobStoreConformance("fs", async () => new FsBlobStore(await mkdtemp(join(tmpdir(), "skiff-blob-"))));
