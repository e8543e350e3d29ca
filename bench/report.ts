import { existsSync } from "node:fs";
import { readFile, writeFile } from "node:fs/promises";
import { availableParallelism, cpus, release, totalmem } from "node:os";

/** One line of the results table: a Skiff figure, optionally against a baseline with a goal on their ratio. */
export interface Row {
  what: string;
  skiff?: string;
  baseline?: string;
  /** Skiff's figure divided by the baseline's. */
  ratio?: number;
  goal?: { op: "≤" | "≥"; ratio: number };
  /** A goal that is not a ratio (e.g. no errors), and whether it was met. */
  check?: { goal: string; met: boolean };
}

/** The machine the bench ran on, as one line. */
export function machine(): string {
  const gib = (totalmem() / 2 ** 30).toFixed(1);
  return `${availableParallelism()} cores (${cpus()[0]?.model.trim() ?? "unknown CPU"}), ${gib} GiB memory, Linux ${release()}, Node ${process.version}`;
}

/** Whether the row meets its goal; undefined for a row without one. */
export function goalMet(row: Row): boolean | undefined {
  if (row.check) return row.check.met;
  if (row.ratio === undefined || !row.goal) return undefined;
  return row.goal.op === "≤" ? row.ratio <= row.goal.ratio : row.ratio >= row.goal.ratio;
}

/** The rows as a Markdown table (readable as plain text too). */
export function table(rows: Row[]): string {
  const cells = rows.map((r) => [
    r.what,
    r.skiff ?? "",
    r.baseline ?? "",
    r.ratio === undefined ? "" : `${r.ratio.toFixed(2)}×`,
    r.goal ? `${r.goal.op} ${r.goal.ratio}×` : (r.check?.goal ?? ""),
    { true: "yes", false: "**no**", undefined: "" }[String(goalMet(r))],
  ]);
  const header = ["measurement", "Skiff", "baseline", "ratio", "goal", "met"];
  return [header, ["---", "---:", "---:", "---:", "---", "---"], ...cells]
    .map((c) => `| ${c.join(" | ")} |`)
    .join("\n");
}

/**
 * Writes this runtime's section of `path` (between `<!-- bench:RUNTIME -->` markers), keeping the other
 * runtimes' sections, so `--runtime runc` and the default gVisor run can share one file.
 */
export async function writeResults(path: string, runtime: string, section: string): Promise<void> {
  const begin = `<!-- bench:${runtime} -->`;
  const end = `<!-- /bench:${runtime} -->`;
  const block = `${begin}\n${section.trim()}\n${end}`;
  const header = "# Skiff benchmarks\n\nWritten by `make bench` (`bench/run.ts`); one section per container runtime.\n";
  const old = existsSync(path) ? await readFile(path, "utf8") : header;
  const at = old.indexOf(begin);
  const until = old.indexOf(end);
  const next =
    at >= 0 && until > at ? old.slice(0, at) + block + old.slice(until + end.length) : `${old.trimEnd()}\n\n${block}\n`;
  await writeFile(path, next);
}
