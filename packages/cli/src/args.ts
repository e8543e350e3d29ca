/** A CLI value as the most natural type: numbers, booleans and JSON stay typed, the rest are strings. */
export function coerce(value: string): unknown {
  if (value === "true") return true;
  if (value === "false") return false;
  if (/^-?\d+(\.\d+)?$/.test(value)) return Number(value);
  if (/^[[{"]/.test(value)) {
    try {
      return JSON.parse(value);
    } catch {
      return value;
    }
  }
  return value;
}

/**
 * Parses `--n 100 --dry-run --no-color --name=x` into `{ n: 100, dryRun: true, color: false, name: "x" }`.
 * Positional words are returned apart.
 */
export function parseFlags(argv: string[]): { flags: Record<string, unknown>; positional: unknown[] } {
  const flags: Record<string, unknown> = {};
  const positional: unknown[] = [];
  const camel = (name: string) => name.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === "--") {
      positional.push(...argv.slice(i + 1).map(coerce));
      break;
    }
    if (!arg.startsWith("--")) {
      positional.push(coerce(arg));
      continue;
    }
    const body = arg.slice(2);
    const eq = body.indexOf("=");
    if (eq >= 0) {
      flags[camel(body.slice(0, eq))] = coerce(body.slice(eq + 1));
    } else if (body.startsWith("no-")) {
      flags[camel(body.slice(3))] = false;
    } else if (i + 1 < argv.length && !argv[i + 1]!.startsWith("--")) {
      flags[camel(body)] = coerce(argv[++i]!);
    } else {
      flags[camel(body)] = true;
    }
  }
  return { flags, positional };
}
