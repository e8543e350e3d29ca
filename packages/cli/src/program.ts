import { Command, Option } from "commander";
import { SkiffError } from "skiff/errors";
import { UserCodeError } from "./bundle.js";
import { type Config, loadConfig } from "./config.js";
import { exitWhenFlushed, red } from "./output.js";

const ENV_HELP = "environment (default: SKIFF_ENV, else the profile's env, else main)";

/**
 * The commands that run Skiff itself on this machine. The CLI declares them (flags and help) beside the
 * user commands; apps/host implements them, so this package needs no server, worker or store.
 */
export interface HostCommands {
  upCommand(options: { port?: number; embedded: boolean }, config: Config): Promise<void>;
  serverCommand(options: { port?: number }, config: Config): Promise<void>;
  workerCommand(config: Config): Promise<void>;
  prepareCommand(config: Config): Promise<void>;
}

/**
 * Runs the `skiff` command line: the user commands, and the host commands `loadHost` provides (loaded only
 * when one of them runs, so `skiff run` does not load the server or the worker).
 */
export function runSkiff(loadHost: () => Promise<HostCommands>): void {
  const program = new Command("skiff").description("Serverless TypeScript on your own machines").showHelpAfterError();

  program
    .command("run")
    .description(
      "run a local entrypoint (or a function) of FILE, with its functions in containers; FILE is bundled, not type-checked (`skiff deploy` type-checks)",
    )
    .argument("<target>", "FILE or FILE::NAME, then the entrypoint's flags (--n 5), or a function's arguments after --")
    .option("--detach", "keep the app running after this command exits")
    .allowUnknownOption()
    .allowExcessArguments()
    .helpOption(false)
    .action(async (target: string, options: { detach?: boolean }, command: Command) => {
      // Flags after FILE are the entrypoint's (its own --help included): only in FILE's place is it this help.
      if (target === "--help" || target === "-h") command.help();
      const argv = command.args.slice(1).filter((arg) => arg !== "--detach");
      const { runCommand } = await import("./commands/run.js");
      process.exitCode = await runCommand(target, argv, { detach: Boolean(options.detach) }, loadConfig());
      // The user's bundle holds its own connection; end the process rather than wait on it.
      await exitWhenFlushed(process.exitCode);
    });

  program
    .command("serve")
    .description(
      "serve FILE's web functions (app.web, app.endpoint, app.webServer) from an ephemeral app until Ctrl-C, printing their URLs and streaming their logs; FILE is type-checked, and a change to it or a file it imports reloads it",
    )
    .argument("<file>")
    .option("--env <env>", ENV_HELP)
    .option(
      "--no-typecheck",
      "skip the type check on start and on reloads (done when a tsconfig.json is at or above FILE)",
    )
    .action(async (file: string, options: { typecheck: boolean; env?: string }) => {
      const { serveCommand } = await import("./commands/serve.js");
      process.exitCode = await serveCommand(file, options, loadConfig());
      await exitWhenFlushed(process.exitCode);
    });

  program
    .command("up")
    .description("run a server and a worker on this machine")
    .option("--port <port>", "port to listen on (default 7420)", Number)
    .addOption(new Option("--embedded").hideHelp())
    .action(async (options: { port?: number; embedded?: boolean }) => {
      const { upCommand } = await loadHost();
      await upCommand({ ...options, embedded: Boolean(options.embedded) }, loadConfig());
      process.exit(0);
    });

  program
    .command("server")
    .description("run the control plane (store: SKIFF_DATABASE_URL or embedded PGlite)")
    .option("--port <port>", "port to listen on (default 7420)", Number)
    .action(async (options: { port?: number }) => {
      const { serverCommand } = await loadHost();
      await serverCommand(options, loadConfig());
      process.exit(0);
    });

  program
    .command("rotate-key")
    .description("re-encrypt every secret under a new master key; the server's key file is replaced (admin)")
    .action(async () => (await import("./commands/token.js")).rotateKeyCommand(loadConfig()));

  program
    .command("worker")
    .description("run a worker agent that joins SKIFF_SERVER_URL")
    .action(async () => {
      const { workerCommand } = await loadHost();
      await workerCommand(loadConfig());
      process.exit(0);
    });

  program
    .command("deploy")
    .description("deploy FILE as a persistent app: a new version, type-checked, with the images built first")
    .argument("<file>")
    .option("--name <name>", "the app's name (default: the name in new App(...))")
    .option("--env <env>", ENV_HELP)
    .option("--no-typecheck", "skip the type check (done when a tsconfig.json is at or above FILE)")
    .action(async (file: string, options: { name?: string; env?: string; typecheck: boolean }) => {
      const { deployCommand } = await import("./commands/deploy.js");
      process.exitCode = await deployCommand(file, options, loadConfig());
      await exitWhenFlushed(process.exitCode);
    });

  const app = program.command("app").description("manage apps");
  app
    .command("list")
    .description("list apps, newest first")
    .option("--env <env>", ENV_HELP)
    .action(async (options: { env?: string }) =>
      (await import("./commands/app.js")).appListCommand(options, loadConfig()),
    );
  app
    .command("history")
    .description("list the versions of a deployed app")
    .argument("<app>", "the app's name")
    .option("--env <env>", ENV_HELP)
    .action(async (name: string, options: { env?: string }) =>
      (await import("./commands/app.js")).appHistoryCommand(name, options, loadConfig()),
    );
  app
    .command("rollback")
    .description("deploy an earlier version again (default: the one before the running one)")
    .argument("<app>", "the app's name")
    .argument("[version]", "the version to go back to")
    .option("--env <env>", ENV_HELP)
    .action(async (name: string, version: string | undefined, options: { env?: string }) =>
      (await import("./commands/app.js")).appRollbackCommand(name, version, options, loadConfig()),
    );
  app
    .command("stop")
    .description("stop an app (cancels its unfinished inputs)")
    .argument("<app>", "the app's name or id")
    .option("--env <env>", ENV_HELP)
    .action(async (name: string, options: { env?: string }) =>
      (await import("./commands/app.js")).appStopCommand(name, options, loadConfig()),
    );
  app
    .command("logs")
    .description("follow the logs of an app's containers")
    .argument("<app>", "the app's name or id")
    .option("--env <env>", ENV_HELP)
    .action(async (name: string, options: { env?: string }) =>
      (await import("./commands/app.js")).appLogsCommand(name, options, loadConfig()),
    );

  program
    .command("container")
    .description("containers")
    .command("list")
    .description("list the containers workers run now, with how each started (booted or restored) and how long it took")
    .option(
      "--phases",
      "under each container, the time of each phase of its start (placement, prepare, mounts, create, boot or restore, load, enter) and of its first input",
    )
    .action(async (options: { phases?: boolean }) =>
      (await import("./commands/app.js")).containerListCommand(options, loadConfig()),
    );

  const secret = program.command("secret").description("secrets: environment variables for functions that name them");
  secret
    .command("create")
    .description("create a secret (values from KEY=value arguments and/or a dotenv file)")
    .argument("<name>")
    .argument("[pairs...]", "KEY=value")
    .option("--from-dotenv <file>", "read KEY=value lines from a dotenv file")
    .option("--env <env>", ENV_HELP)
    .option("--force", "replace a secret of that name")
    .action(async (name: string, pairs: string[], options: { env?: string; fromDotenv?: string; force?: boolean }) =>
      (await import("./commands/secret.js")).secretCreateCommand(name, pairs, options, loadConfig()),
    );
  secret
    .command("list")
    .description("list secrets: names, keys and dates, never values")
    .option("--env <env>", ENV_HELP)
    .action(async (options: { env?: string }) =>
      (await import("./commands/secret.js")).secretListCommand(options, loadConfig()),
    );
  secret
    .command("delete")
    .description("delete a secret")
    .argument("<name>")
    .option("--env <env>", ENV_HELP)
    .action(async (name: string, options: { env?: string }) =>
      (await import("./commands/secret.js")).secretDeleteCommand(name, options, loadConfig()),
    );

  const volume = program
    .command("volume")
    .description("volumes: persistent files shared by functions and programs, versioned");
  const volumeCommand = (action: string, description: string) =>
    volume.command(action).description(description).option("--env <env>", ENV_HELP);
  const volumes = () => import("./commands/volume.js");
  volumeCommand("create", "create a volume")
    .argument("<name>")
    .action(async (name: string, options: { env?: string }) =>
      (await volumes()).volumeCreateCommand(name, options, loadConfig()),
    );
  volumeCommand("list", "list the volumes of the environment").action(async (options: { env?: string }) =>
    (await volumes()).volumeListCommand(options, loadConfig()),
  );
  volumeCommand("ls", "list a directory of a volume")
    .argument("<name>")
    .argument("[path]", "a directory or file in the volume (default: its root)")
    .option("-r, --recursive", "everything below the directory")
    .option("--version <n>", "as it was at that version")
    .action(
      async (
        name: string,
        path: string | undefined,
        options: { env?: string; recursive?: boolean; version?: string },
      ) => (await volumes()).volumeLsCommand(name, path, options, loadConfig()),
    );
  volumeCommand("put", "upload a file, a directory (recursively) or stdin (-) into a volume")
    .argument("<name>")
    .argument("<local>", "a file, a directory, or - for stdin")
    .argument("[remote]", "where in the volume (a file: its name at the root; a directory: its name)")
    .action(async (name: string, local: string, remote: string | undefined, options: { env?: string }) =>
      (await volumes()).volumePutCommand(name, local, remote, options, loadConfig()),
    );
  volumeCommand("get", "download a file or a directory (recursively) from a volume; - for stdout")
    .argument("<name>")
    .argument("<remote>", "a file or directory in the volume")
    .argument("[local]", "where to write it (default: its name here), or - for stdout")
    .option("--version <n>", "as it was at that version")
    .action(
      async (name: string, remote: string, local: string | undefined, options: { env?: string; version?: string }) =>
        (await volumes()).volumeGetCommand(name, remote, local, options, loadConfig()),
    );
  volumeCommand("rm", "remove a file, or a directory with -r")
    .argument("<name>")
    .argument("<path>")
    .option("-r, --recursive", "a directory with everything in it")
    .action(async (name: string, path: string, options: { env?: string; recursive?: boolean }) =>
      (await volumes()).volumeRmCommand(name, path, options, loadConfig()),
    );
  volumeCommand("cp", "copy a file or a directory within a volume (the bytes are shared, not copied)")
    .argument("<name>")
    .argument("<from>")
    .argument("<to>")
    .action(async (name: string, from: string, to: string, options: { env?: string }) =>
      (await volumes()).volumeCpCommand(name, from, to, options, loadConfig()),
    );
  volumeCommand("delete", "delete a volume with all its versions")
    .argument("<name>")
    .option("--force", "delete it even while running containers mount it (their mounts then fail)")
    .action(async (name: string, options: { env?: string; force?: boolean }) =>
      (await volumes()).volumeDeleteCommand(name, options, loadConfig()),
    );
  volumeCommand("history", "list a volume's versions: who made each and what it did")
    .argument("<name>")
    .action(async (name: string, options: { env?: string }) =>
      (await volumes()).volumeHistoryCommand(name, options, loadConfig()),
    );
  volumeCommand("rollback", "make a new version with an earlier version's files")
    .argument("<name>")
    .argument("[version]", "default: the version before the latest")
    .action(async (name: string, version: string | undefined, options: { env?: string }) =>
      (await volumes()).volumeRollbackCommand(name, version, options, loadConfig()),
    );

  const env = program.command("env").description("environments: apps and secrets of the same name, kept apart");
  for (const action of ["create", "list", "delete"] as const) {
    env
      .command(action)
      .description(`${action} ${action === "list" ? "environments" : "an environment"}`)
      .argument(action === "list" ? "[name]" : "<name>")
      .action(async (name: string | undefined) =>
        (await import("./commands/secret.js")).envCommand(action, name, loadConfig()),
      );
  }

  const token = program
    .command("token")
    .description("API tokens: what the CLI, programs and workers authenticate with");
  token
    .command("create")
    .description("create a token of this workspace; its secret is printed once")
    .requiredOption("--name <name>", "what uses it, e.g. ci")
    .option("--worker", "a worker token, for `skiff worker` on another host (admin)")
    .option("--admin", "a token that may also create workspaces and worker tokens (admin)")
    .option("--proxy", "a proxy token: opens web endpoints with requiresProxyAuth (Skiff-Key/Skiff-Secret headers)")
    .option("--save-as <profile>", "also save it as a profile in SKIFF_HOME/config.toml")
    .action(async (options: { name: string; worker?: boolean; admin?: boolean; proxy?: boolean; saveAs?: string }) =>
      (await import("./commands/token.js")).tokenCreateCommand(options, loadConfig()),
    );
  token
    .command("list")
    .description("list this workspace's tokens (never their secrets)")
    .option("--worker", "list worker tokens instead (admin)")
    .action(async (options: { worker?: boolean }) =>
      (await import("./commands/token.js")).tokenListCommand(options, loadConfig()),
    );
  token
    .command("revoke")
    .description("revoke a token: it stops working at once, open connections included")
    .argument("<id>", "the token's id (tk-…)")
    .action(async (id: string) => (await import("./commands/token.js")).tokenRevokeCommand(id, loadConfig()));

  program
    .command("whoami")
    .description("show the workspace, token, server and environment this CLI uses")
    .action(async () => (await import("./commands/token.js")).whoamiCommand(loadConfig()));

  const workspace = program
    .command("workspace")
    .description("workspaces: tenants with their own apps, secrets and tokens");
  workspace
    .command("create")
    .description("create a workspace and its first token, saved as a profile (admin)")
    .argument("<name>")
    .option("--save-as <profile>", "the profile to save its token as (default: the workspace's name)")
    .action(async (name: string, options: { saveAs?: string }) =>
      (await import("./commands/token.js")).workspaceCreateCommand(name, options, loadConfig()),
    );
  workspace
    .command("list")
    .description("list workspaces (admin)")
    .action(async () => (await import("./commands/token.js")).workspaceListCommand(loadConfig()));

  const image = program.command("image").description("build and export images");
  image
    .command("build")
    .description("build the images of FILE's functions (or of one) now, instead of before their first call")
    .argument("<target>", "FILE or FILE::NAME")
    .action(async (target: string) => {
      const { imageBuildCommand } = await import("./commands/image.js");
      process.exitCode = await imageBuildCommand(target, loadConfig());
      await exitWhenFlushed(process.exitCode);
    });

  image
    .command("export")
    .description("build a function's image and write it to DIR as an OCI layout other tools can run")
    .argument("<target>", "FILE or FILE::NAME")
    .argument("<dir>", "a new or empty directory")
    .action(async (target: string, dir: string) => {
      const { imageExportCommand } = await import("./commands/image.js");
      process.exitCode = await imageExportCommand(target, dir, loadConfig());
      await exitWhenFlushed(process.exitCode);
    });

  program
    .command("shell")
    .description("open a shell (or run COMMAND) in a function's image, built first if needed")
    .requiredOption("--image <target>", "FILE or FILE::NAME: the function whose image to open")
    .argument("[command...]", "what to run instead of /bin/sh")
    .action(async (command: string[], options: { image: string }) => {
      const { shellCommand } = await import("./commands/image.js");
      process.exitCode = await shellCommand(options.image, command, loadConfig());
      await exitWhenFlushed(process.exitCode);
    });

  program
    .command("prepare")
    .description("fetch the base image and Node build for containers (done by setup)")
    .action(async () => {
      const { prepareCommand } = await loadHost();
      await prepareCommand(loadConfig());
    });

  program.parseAsync().catch((error: unknown) => {
    // Errors raised on purpose say what to do; a stack would only bury that.
    if (error instanceof UserCodeError || error instanceof SkiffError)
      process.stderr.write(`${red("error")} ${error.message}\n`);
    else process.stderr.write(`${red("error")} ${(error as Error).stack ?? String(error)}\n`);
    return exitWhenFlushed(1);
  });
}
