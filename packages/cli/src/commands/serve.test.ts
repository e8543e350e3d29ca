import { SkiffError } from "skiff/errors";
import { describe, expect, it } from "vitest";
import { labelsInUseHint } from "./serve.js";

describe("labelsInUseHint", () => {
  const clash = new SkiffError(
    "CONFLICT",
    'web labels are in use in environment "main": "gen" (generate) by hello.generate; give those functions another `label`, or stop that app first (`skiff app stop ap-1`)',
  );

  it("adds how to serve beside the app that holds the labels: an environment of its own", () => {
    const hinted = labelsInUseHint(clash, "app.ts", undefined) as SkiffError;
    expect(hinted.code).toBe("CONFLICT");
    expect(hinted.message).toBe(
      `${clash.message}; or serve it in an environment of its own, beside the running app: \`skiff env create dev\`, then \`skiff serve --env dev app.ts\``,
    );
    expect((labelsInUseHint(clash, "app.ts", "dev") as Error).message).toContain("`skiff serve --env dev2 app.ts`");
  });

  it("leaves any other error as it is", () => {
    const other = new SkiffError("CONFLICT", "something else");
    expect(labelsInUseHint(other, "app.ts", undefined)).toBe(other);
    const plain = new Error("web labels are in use");
    expect(labelsInUseHint(plain, "app.ts", undefined)).toBe(plain);
  });
});
