import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bundleProgram, fixtureVariant, NO_TYPECHECK, Stack } from "./stack.js";

const MAIN_TOKEN = "main-token-7f3a9c";
const STAGING_TOKEN = "staging-token-2b8e41";

/** Environments and encrypted secrets through the real CLI, server, worker and containers. */
describe("secrets and environments", () => {
  let stack: Stack;
  let client: string;
  const variant = (name: string, edit: (code: string) => string) =>
    fixtureVariant("e2e/fixtures/secrets-app.ts", name, edit);
  const call = (env: string) =>
    stack.runProgram<{ token: string; mode: string; shared: string }>(client, [env], 120_000);

  beforeAll(async () => {
    stack = await Stack.start();
    client = await bundleProgram("e2e/fixtures/secrets-client.ts", stack.home);
  }, 120_000);

  afterAll(async () => {
    await stack?.stop();
  });

  it("gives the same app different secret values in two environments, and never shows a value", async () => {
    expect((await stack.run(["env", "create", "staging"])).code).toBe(0);
    expect((await stack.run(["env", "list"])).stdout).toMatch(/^staging\t/m);
    const created = await stack.run(["secret", "create", "hf", `HF_TOKEN=${MAIN_TOKEN}`, "SHARED=from-name"]);
    expect(created.code, created.stderr).toBe(0);
    expect(created.stderr).not.toContain(MAIN_TOKEN);
    const dotenv = join(stack.home, "staging.env");
    writeFileSync(dotenv, `# staging\nHF_TOKEN="${STAGING_TOKEN}"\n`);
    expect((await stack.run(["secret", "create", "hf", "--from-dotenv", dotenv, "--env", "staging"])).code).toBe(0);
    const again = await stack.run(["secret", "create", "hf", "HF_TOKEN=x"]);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/already exists in environment "main".*--force/);

    const listed = await stack.run(["secret", "list"]);
    expect(listed.stdout).toMatch(/^hf\tHF_TOKEN,SHARED\t/m);
    expect(listed.stdout + listed.stderr).not.toContain(MAIN_TOKEN);

    const file = variant("secrets-app", (code) => code);
    for (const env of ["main", "staging"]) {
      const deployed = await stack.run(["deploy", file, "--env", env, NO_TYPECHECK], { timeoutMs: 300_000 });
      expect(deployed.code, deployed.stderr).toBe(0);
    }
    // The named secret, then the local values over it.
    expect(await call("main")).toEqual({ token: MAIN_TOKEN, mode: "local-mode", shared: "from-object" });
    expect(await call("staging")).toEqual({ token: STAGING_TOKEN, mode: "local-mode", shared: "from-object" });
  }, 400_000);

  it("redacts secret values from the function's logs", async () => {
    const run = await stack.run(["run", variant("secrets-app", (code) => code)]);
    expect(run.code, run.stderr).toBe(0);
    const output = run.stdout + run.stderr;
    expect(output).toContain("the token is [secret]");
    expect(output.replace(/"token": "[^"]*"/, "")).not.toContain(MAIN_TOKEN);
  }, 120_000);

  it("refuses a deploy whose secret or required key is missing, naming it and the fix", async () => {
    const missing = await stack.run([
      "deploy",
      variant("secrets-missing", (code) => code.replace('Secret.fromName("hf"', 'Secret.fromName("nope"')),
      NO_TYPECHECK,
    ]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(
      /function "token" needs the secret "nope", which is not in environment "main": create it with `skiff secret create nope KEY=value --env main`/,
    );
    const key = await stack.run([
      "deploy",
      variant("secrets-key", (code) =>
        code.replace('const REQUIRED = ["HF_TOKEN"]', 'const REQUIRED = ["HF_TOKEN", "OTHER"]'),
      ),
      "--env",
      "staging",
      NO_TYPECHECK,
    ]);
    expect(key.code).toBe(1);
    expect(key.stderr).toMatch(/the secret "hf" in environment "staging" has no OTHER \(it has: HF_TOKEN\)/);
    expect(key.stderr).not.toContain(STAGING_TOKEN);
    const noEnv = await stack.run(["deploy", variant("secrets-app", (code) => code), "--env", "prod", NO_TYPECHECK]);
    expect(noEnv.stderr).toMatch(/no environment "prod": create it with `skiff env create prod`/);
  }, 200_000);

  it("keeps another workspace's apps, secrets and calls from it, and stops a revoked token", async () => {
    const created = await stack.run(["workspace", "create", "team"]);
    expect(created.code, created.stderr).toBe(0);
    const tokenId = created.stdout.match(/SKIFF_TOKEN_ID=(tk-\w+)/)?.[1];
    const secret = created.stdout.match(/SKIFF_TOKEN_SECRET=(\S+)/)?.[1];
    expect(tokenId && secret).toBeTruthy();
    const team = { env: { SKIFF_PROFILE: "team" } };
    expect((await stack.run(["whoami"], team)).stderr).toMatch(/^skiff team \(ws-/m);
    // The local workspace's app and secret are not there for the team, not even by name.
    expect((await stack.run(["app", "list"], team)).stderr).toMatch(/no apps in environment "main"/);
    expect((await stack.run(["secret", "list"], team)).stderr).toMatch(/no secrets in "main"/);
    const history = await stack.run(["app", "history", "e2e-secrets"], team);
    expect(history.stderr).toMatch(/no running app "e2e-secrets" in environment "main"/);
    const byProgram = await stack.runProgram(client, ["main"], 60_000, { SKIFF_PROFILE: "team" }).then(
      () => "answered",
      (error: Error) => error.message,
    );
    expect(byProgram).toMatch(/no running app "e2e-secrets" with function "token" in environment "main"/);
    // The same names live apart: the team's own "hf" leaves the local one as it was.
    expect((await stack.run(["secret", "create", "hf", "HF_TOKEN=team-value"], team)).code).toBe(0);
    expect(await call("main")).toEqual({ token: MAIN_TOKEN, mode: "local-mode", shared: "from-object" });
    // The local admin cannot revoke the team's token; the team can, and then it is refused at once.
    expect((await stack.run(["token", "revoke", tokenId!])).stderr).toMatch(/no token tk-\w+ in this workspace/);
    expect((await stack.run(["token", "revoke", tokenId!], team)).code).toBe(0);
    const refused = await stack.run(["app", "list"], team);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/the token was not accepted/);
  }, 200_000);
});
