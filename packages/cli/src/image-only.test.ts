import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { ImageSpec } from "@skiff/protocol";
import { afterAll, describe, expect, it } from "vitest";
import { COLLECTING, imageOnlyStub, installedName, missingPackage, packageOf } from "./image-only.js";

const dir = mkdtempSync(join(tmpdir(), "skiff-image-only-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const image = (layers: ImageSpec["layers"][number]["step"][], base: ImageSpec["base"] = "debian-bookworm") =>
  ({ base, nodeMajor: 20, mounts: [], layers: layers.map((step) => ({ key: "0".repeat(64), step })) }) as ImageSpec;

describe("image-only imports", () => {
  it("names the package of an import and of an npmInstall argument", () => {
    expect(packageOf("lodash/fp")).toBe("lodash");
    expect(packageOf("@acme/thing/sub")).toBe("@acme/thing");
    expect(installedName("sharp@0.33.5")).toBe("sharp");
    expect(installedName("@acme/thing@^1")).toBe("@acme/thing");
    expect(installedName("lodash")).toBe("lodash");
  });

  it("accepts a package an image installs, and names the file, line and fixes of one none does", () => {
    const file = join(dir, "app.ts");
    writeFileSync(file, 'import { App } from "skiff";\n\nimport _ from "lodash/fp";\n');
    const imports = [{ specifier: "lodash/fp", importer: file }];
    const show = () => "app.ts";
    expect(missingPackage(imports, [image([{ kind: "npm", packages: ["lodash@4"], secrets: [] }])], show)).toBe(
      undefined,
    );
    expect(missingPackage(imports, [image([], { registry: "r/x", insecure: false })], show)).toBe(undefined);
    expect(missingPackage(imports, [image([{ kind: "npm", packages: ["lodash-es"], secrets: [] }])], show)).toBe(
      'app.ts:3: cannot find package "lodash": add it to your project (npm install lodash) or to the image (.npmInstall("lodash"))',
    );
  });
});

describe("imageOnlyStub", () => {
  const load = (specifier: string) => {
    const module = { exports: undefined as unknown };
    new Function("module", imageOnlyStub(specifier))(module);
    return module.exports as Record<string, (...args: unknown[]) => unknown>;
  };
  const collecting = (on: boolean) => {
    (globalThis as Record<symbol, boolean>)[COLLECTING] = on;
  };

  it("is anything while the app is collected, never a thenable", async () => {
    collecting(true);
    try {
      const lodash = load("lodash/fp");
      const chunk = lodash.chunk!;
      expect(typeof chunk([1, 2], 2)).toBe("function");
      expect(`${lodash.VERSION}`).toBe("");
      expect(await Promise.resolve(lodash)).toBe(lodash);
    } finally {
      collecting(false);
    }
  });

  it("throws, naming the package and the fixes, when called on this machine after collection", () => {
    const chunk = load("lodash/fp").chunk!;
    expect(() => chunk([1, 2], 2)).toThrow(
      '"lodash" is installed only in the image, so it cannot run on this machine (a local entrypoint or .local()): install it here too (npm install lodash) or call it in a function',
    );
  });
});
