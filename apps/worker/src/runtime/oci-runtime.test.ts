import { describe, expect, it } from "vitest";
import { toContainerExit } from "./oci-runtime.js";

describe("toContainerExit", () => {
  it("reads 128+N from a runtime CLI as death by signal N", () => {
    expect(toContainerExit(137, null)).toEqual({ exitCode: null, signal: "SIGKILL" });
    expect(toContainerExit(3, null)).toEqual({ exitCode: 3, signal: null });
    expect(toContainerExit(null, "SIGTERM")).toEqual({ exitCode: null, signal: "SIGTERM" });
  });
});
