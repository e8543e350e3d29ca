import { runCommand } from "../runtime/command.js";

/** Bytes a directory tree takes on disk (`du`), 0 if it cannot be measured. */
export async function diskUsage(dir: string): Promise<number> {
  const result = await runCommand("du", ["-sb", dir]);
  return result.code === 0 ? Number(result.stdout.split("\t")[0]) || 0 : 0;
}
