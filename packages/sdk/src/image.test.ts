import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ImageStep } from "@skiff/protocol";
import { describe, expect, it } from "vitest";
import { CloudBucketMount } from "./bucket-mount.js";
import { parseDockerfile } from "./dockerfile.js";
import { Image } from "./image.js";
import { Secret } from "./secret.js";
import { tarOf } from "./tar.js";
import { Volume } from "./volume.js";

const keys = (image: Image, env: NodeJS.ProcessEnv = {}) => image.toSpec(20, env).layers.map((l) => l.key);

describe("Image", () => {
  const base = Image.debianSlim().aptInstall("jq").npmInstall("sharp@0.33.5").env({ MODE: "prod" });

  it("keys each layer by its parent and its step, so a change reaches only that layer and those after", () => {
    const one = keys(base.runCommands("echo one"));
    const two = keys(base.runCommands("echo two"));
    expect(one).toHaveLength(4);
    expect(two.slice(0, 3)).toEqual(one.slice(0, 3));
    expect(two[3]).not.toEqual(one[3]);
    expect(keys(Image.debianSlim().npmInstall("sharp@0.33.5"))[0]).not.toEqual(one[1]);
    expect(keys(base, {})).toEqual(keys(base, {}));
  });

  it("rebuilds on forceBuild and SKIFF_FORCE_BUILD=1, and keys the Node major", () => {
    const forced = base.runCommands("date", { forceBuild: true });
    expect(keys(forced).slice(0, 3)).toEqual(keys(base));
    expect(keys(forced)[3]).not.toEqual(keys(forced)[3]);
    expect(keys(base, { SKIFF_FORCE_BUILD: "1" })).not.toEqual(keys(base));
    expect(Image.debianSlim({ node: 22 }).aptInstall("jq").toSpec(20).nodeMajor).toBe(22);
    expect(keys(Image.debianSlim({ node: 22 }).aptInstall("jq"))).not.toEqual(
      keys(Image.debianSlim().aptInstall("jq")),
    );
  });

  it("records a step's secrets by name: part of its key, values never", () => {
    const plain = base.runCommands("npm whoami");
    const withSecret = base.runCommands("npm whoami", { secrets: [Secret.fromName("npm")] });
    expect(withSecret.toSpec(20).layers[3]!.step).toEqual({ kind: "run", commands: ["npm whoami"], secrets: ["npm"] });
    expect(keys(withSecret)[3]).not.toEqual(keys(plain)[3]);
    // No secrets, no field: the keys of images from before stay as they were.
    expect(base.runCommands("x", { secrets: [] }).toSpec(20).layers[3]!.step).toEqual({ kind: "run", commands: ["x"] });
    expect(() => base.npmInstall("left-pad", { secrets: [Secret.fromObject({ TOKEN: "t" })] })).toThrow(
      "must be named ones",
    );
  });

  it("records a runCommands step's volumes by name and path: part of its key, contents never", () => {
    const cache = Volume.fromName("pip-cache", { createIfMissing: true });
    const step = base.runCommands("pip download x -d /cache", { volumes: { "/cache": cache } }).toSpec(20)
      .layers[3]!.step;
    expect(step).toEqual({
      kind: "run",
      commands: ["pip download x -d /cache"],
      volumes: [{ path: "/cache", name: "pip-cache", createIfMissing: true }],
    });
    expect(ImageStep.parse(step)).toEqual(step);
    const at = (path: string, volume = cache) => keys(base.runCommands("x", { volumes: { [path]: volume } }))[3];
    expect(at("/cache")).toEqual(at("/cache", Volume.fromName("pip-cache", { createIfMissing: true })));
    expect(at("/cache")).not.toEqual(at("/pip"));
    expect(at("/cache")).not.toEqual(at("/cache", Volume.fromName("other", { createIfMissing: true })));
    expect(at("/cache")).not.toEqual(keys(base.runCommands("x"))[3]);
    // No volumes, no field: the keys of images from before stay as they were.
    expect(base.runCommands("x", { volumes: {} }).toSpec(20).layers[3]!.step).toEqual({ kind: "run", commands: ["x"] });
  });

  it("refuses volumes a build step cannot mount, saying what to do", () => {
    const cache = Volume.fromName("cache");
    expect(() => base.aptInstall("jq", { volumes: { "/cache": cache } })).toThrow(
      "aptInstall: only runCommands mounts volumes",
    );
    expect(() => base.npmInstall("x", { volumes: { "/cache": cache } })).toThrow("npmInstall: only runCommands");
    expect(() => base.runCommands("x", { volumes: { "/cache": cache.readOnly() } })).toThrow("read-write");
    const bucket = CloudBucketMount("datasets", { endpoint: "http://127.0.0.1:9000" });
    expect(() => base.runCommands("x", { volumes: { "/data": bucket as unknown as Volume } })).toThrow("no bucket");
    expect(() =>
      base.runCommands("x", { volumes: { "/cache": Volume.fromName("cache", { environment: "dev" }) } }),
    ).toThrow("drop `environment`");
    expect(() => base.runCommands("x", { volumes: { "/proc": cache } })).toThrow("cannot mount over /proc");
    expect(() => base.runCommands("x", { volumes: { cache } })).toThrow("absolute and plain");
    expect(() => base.runCommands("x", { volumes: { "/a": cache, "/a/b": Volume.fromName("b") } })).toThrow("overlaps");
    // The server checks a hand-made manifest the same way.
    expect(() =>
      ImageStep.parse({ kind: "run", commands: ["x"], volumes: [{ path: "/dev/x", name: "cache" }] }),
    ).toThrow("cannot mount over /dev");
  });

  it("refuses what cannot be right, saying what to do", () => {
    expect(() => Image.debianSlim().aptInstall()).toThrow("name at least one package");
    expect(() => Image.debianSlim().aptInstall("jq; rm -rf /")).toThrow("is not a package name");
    expect(() => Image.debianSlim().workdir("srv")).toThrow("absolute path");
    expect(() => Image.debianSlim({ node: 16 })).toThrow("18 or later");
    expect(() => Image.debianSlim().addLocalFile("no/such/file", "/f")).toThrow("does not exist");
  });

  it("mounts local files by default and copies them into a layer when asked", () => {
    const dir = mkdtempSync(join(tmpdir(), "skiff-image-"));
    writeFileSync(join(dir, "model.json"), "{}");
    const mounted = Image.debianSlim().addLocalFile(join(dir, "model.json"), "/m.json").toSpec(20);
    expect(mounted.layers).toEqual([]);
    expect(mounted.mounts).toEqual([{ archive: expect.stringMatching(/^[0-9a-f]{64}$/), target: "/m.json" }]);
    const copied = Image.debianSlim().addLocalDir(dir, "/data", { copy: true }).toSpec(20);
    expect(copied.layers[0]?.step).toMatchObject({ kind: "copy", target: "/data" });
  });
});

describe("tarOf", () => {
  it("is the same for the same content, and GNU tar reads it", () => {
    const dir = mkdtempSync(join(tmpdir(), "skiff-tar-"));
    writeFileSync(join(dir, "a.txt"), "alpha");
    const deep = join(...Array(12).fill("long-name"));
    mkdirSync(join(dir, deep), { recursive: true });
    writeFileSync(join(dir, deep, "b.txt"), "beta");
    const first = tarOf(dir, "/srv/data");
    expect(Buffer.compare(first, tarOf(dir, "/srv/data"))).toBe(0);
    const file = join(dir, "..", `${Date.now()}.tar`);
    writeFileSync(file, first);
    const listed = execFileSync("tar", ["-tf", file], { encoding: "utf8" }).trim().split("\n");
    expect(listed[1]).toBe("srv/data/a.txt");
    expect(listed.at(-1)).toBe(`srv/data/${deep}/b.txt`);
  });
});

describe("Dockerfiles", () => {
  it("joins continued lines and drops comments", () => {
    expect(parseDockerfile("# c\nFROM debian:12\nRUN a \\\n  && b\n\nenv A=1\n")).toEqual([
      { line: 2, op: "FROM", args: "debian:12" },
      { line: 3, op: "RUN", args: "a  && b" },
      { line: 6, op: "ENV", args: "A=1" },
    ]);
  });

  it("names the line of what it cannot build", () => {
    const dir = mkdtempSync(join(tmpdir(), "skiff-docker-"));
    const file = (text: string) => {
      writeFileSync(join(dir, "Dockerfile"), text);
      return () => Image.fromDockerfile(join(dir, "Dockerfile"));
    };
    expect(file("FROM alpine:3\n")).toThrow(":1: FROM alpine:3: only Debian bookworm bases");
    expect(file("FROM debian:bookworm\nHEALTHCHECK CMD true\n")).toThrow(":2: HEALTHCHECK is not supported");
    expect(file("FROM debian:12\nFROM debian:12\n")).toThrow("multi-stage");
    expect(file("FROM debian:12\nCOPY missing.txt /x\n")).toThrow("no such file in the build context");
    expect(file("RUN true\n")).toThrow("RUN before FROM");
  });
});
