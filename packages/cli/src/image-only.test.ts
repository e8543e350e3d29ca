import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { ImageSpec } from "@skiff/protocol";
import { describe, expect, it } from "vitest";
import { installedName, missingPackage, packageOf } from "./image-only.js";

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
    const dir = mkdtempSync(join(tmpdir(), "skiff-image-only-"));
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
