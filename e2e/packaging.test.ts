import { execFile, execFileSync, spawn } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ROOT, Stack } from "./stack.js";

const run = promisify(execFile);

const APP = `import { App } from "skiff";

export const app = new App("packaged-e2e");

export const square = app.function({}, async (x: number) => x * x);

export const main = app.localEntrypoint(async ({ n = 4 }: { n?: number }) => {
  console.log(\`RESULT \${JSON.stringify(await square.remote(n))}\`);
});
`;

// Type-checked by the project's tsc: the handler's types reach \`remote\`.
const TYPED = `import { Function } from "skiff";
import { square } from "./app.js";

const nine: number = await square.remote(3);
// @ts-expect-error square takes a number
await square.remote("3");
// @ts-expect-error square returns a number
const text: string = await square.remote(3);
const deployed = await Function.fromName<[number], number>("packaged-e2e", "square");
const n: number = await deployed.remote(2);
export { n, nine, text };
`;

const CLIENT = `import { closeSharedClient, Function } from "skiff";

const square = await Function.fromName("packaged-e2e", "square");
console.log(\`RESULT \${JSON.stringify(await square.remote(7))}\`);
closeSharedClient();
`;

const TSCONFIG = {
  compilerOptions: {
    target: "ES2022",
    module: "NodeNext",
    moduleResolution: "NodeNext",
    strict: true,
    noEmit: true,
    types: ["node"],
  },
  include: ["*.ts"],
};

/**
 * The packed SDK and CLI, installed from their tarballs into a fresh project outside the repository, as a
 * user would: a plain Node program calls a deployed function, tsc type-checks against the SDK's
 * declarations, and the project's own `skiff` bin runs and deploys.
 */
describe("the packed SDK and CLI in a fresh project", () => {
  let stack: Stack;
  let project: string;
  let tarballs: string;

  beforeAll(async () => {
    tarballs = await mkdtemp(join(tmpdir(), "skiff-packages-"));
    project = await mkdtemp(join(tmpdir(), "skiff-project-"));
    const packed = execFileSync(process.execPath, [join(ROOT, "scripts/pack.mjs"), "--no-build", tarballs], {
      encoding: "utf8",
    })
      .trim()
      .split("\n");
    await writeFile(
      join(project, "package.json"),
      JSON.stringify({ name: "fresh", version: "1.0.0", type: "module", private: true }),
    );
    await run(
      "npm",
      ["install", "--no-audit", "--no-fund", "--prefer-offline", ...packed, "typescript@5", "@types/node@20"],
      { cwd: project, timeout: 240_000 },
    );
    await writeFile(join(project, "app.ts"), APP);
    await writeFile(join(project, "typed.ts"), TYPED);
    await writeFile(join(project, "client.mjs"), CLIENT);
    await writeFile(join(project, "tsconfig.json"), JSON.stringify(TSCONFIG));
    stack = await Stack.start();
  }, 300_000);

  afterAll(async () => {
    await stack?.stop();
    await rm(project, { recursive: true, force: true });
    await rm(tarballs, { recursive: true, force: true });
  });

  /** The project's own `skiff` (node_modules/.bin), run in the project against the stack. */
  const skiff = async (args: string[]) => {
    try {
      const { stdout, stderr } = await run("npx", ["--no-install", "skiff", ...args], {
        cwd: project,
        env: stack.env,
        timeout: 240_000,
      });
      return { code: 0, stdout, stderr };
    } catch (error) {
      const failed = error as { code: number; stdout: string; stderr: string };
      return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
    }
  };

  it("installs an SDK with no source, no TypeScript loader and no workspace package inside", async () => {
    const { stdout } = await run("npm", ["ls", "--all", "--parseable"], { cwd: project });
    expect(stdout).not.toMatch(/@skiff\/(protocol|server|worker|store|blob)/);
    const sdk = JSON.parse(
      (await run("node", ["-p", "JSON.stringify(require('./node_modules/skiff/package.json'))"], { cwd: project }))
        .stdout,
    ) as { exports: Record<string, { default: string }>; dependencies: Record<string, string> };
    expect(sdk.exports["."]?.default).toBe("./dist/index.js");
    expect(Object.keys(sdk.dependencies)).not.toContain("@skiff/protocol");
  });

  it("type-checks a TypeScript project against the SDK's declarations", async () => {
    const tsc = await run(process.execPath, ["node_modules/typescript/bin/tsc", "-p", "."], { cwd: project }).catch(
      (error: { stdout: string }) => ({ stdout: `tsc failed:\n${error.stdout}` }),
    );
    expect(tsc.stdout).toBe("");
  });

  it("runs an entrypoint with `npx skiff run`, resolving the SDK from the project", async () => {
    const result = await skiff(["run", "app.ts", "--n", "5"]);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toContain("RESULT 25");
  });

  it("says to install the SDK when a file outside the project cannot resolve it", async () => {
    const elsewhere = join(tarballs, "elsewhere.ts");
    await writeFile(elsewhere, APP);
    const result = await skiff(["run", elsewhere]);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('Could not resolve "skiff"');
    expect(result.stderr).toContain("install the package (npm install) or fix the import");
  });

  it("deploys with `npx skiff deploy`, then a plain `node` program calls the deployed function", async () => {
    const deployed = await skiff(["deploy", "app.ts"]);
    expect(deployed.code, deployed.stderr).toBe(0);
    expect(deployed.stderr).toMatch(/type-checked with TypeScript 5\.\d+\.\d+ \(tsconfig\.json\)/);
    const { stdout } = await run(process.execPath, ["client.mjs"], { cwd: project, env: stack.env, timeout: 120_000 });
    expect(stdout).toContain("RESULT 49");
  });

  it("runs a server from the installed package: its store, HTTP and WebSocket dependencies are installed", async () => {
    const port = 20_000 + Math.floor(Math.random() * 20_000);
    const server = spawn(process.execPath, ["node_modules/.bin/skiff", "server", "--port", String(port)], {
      cwd: project,
      env: { ...stack.env, SKIFF_HOME: join(project, ".skiff-home"), SKIFF_SERVER_URL: undefined },
      stdio: ["ignore", "ignore", "pipe"],
    });
    let stderr = "";
    server.stderr?.on("data", (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    const exited = new Promise((resolveExit) => server.once("exit", resolveExit));
    try {
      const deadline = Date.now() + 60_000;
      let health: { workers: number } | undefined;
      while (!health && Date.now() < deadline && server.exitCode === null) {
        health = await fetch(`http://127.0.0.1:${port}/v1/health`)
          .then((r) => (r.ok ? (r.json() as Promise<{ workers: number }>) : undefined))
          .catch(() => undefined);
        if (!health) await new Promise((r) => setTimeout(r, 200));
      }
      expect(health, stderr).toEqual(expect.objectContaining({ workers: 0 }));
    } finally {
      server.kill("SIGTERM");
      await exited;
    }
  });
});
