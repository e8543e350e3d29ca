// The `skiff` binary (dist/cli.mjs): the CLI's user commands, with this host's up, server, worker and prepare.
import { runSkiff } from "@skiff/cli";

runSkiff(() => import("./commands/index.js"));
