/**
 * The flags a local entrypoint takes: the keys its parameter destructures (`async ({ n = 10, dryRun })`),
 * read from the function's source since the types are gone at run time. Undefined when they cannot be
 * known: a parameter that is not destructured (`(args) => ...`) or that keeps the rest (`...others`).
 */
export function entrypointFlags(run: (...args: never[]) => unknown): string[] | undefined {
  const source = Function.prototype.toString.call(run);
  const open = source.indexOf("(");
  const arrow = source.indexOf("=>");
  if (open < 0 || (arrow >= 0 && arrow < open)) return undefined; // `x => ...`: one plain parameter
  let i = skipSpace(source, open + 1);
  if (source[i] === ")") return [];
  if (source[i] !== "{") return undefined;
  const entries: string[] = [];
  let depth = 0;
  let start = i + 1;
  for (; i < source.length; i++) {
    const c = source[i]!;
    if (c === '"' || c === "'" || c === "`") {
      i = skipString(source, i);
    } else if (c === "{" || c === "[" || c === "(") {
      depth++;
    } else if (c === "}" || c === "]" || c === ")") {
      depth--;
      if (depth === 0) {
        entries.push(source.slice(start, i));
        break;
      }
    } else if (c === "," && depth === 1) {
      entries.push(source.slice(start, i));
      start = i + 1;
    }
  }
  const names: string[] = [];
  for (const entry of entries.map((e) => e.trim()).filter((e) => e !== "")) {
    if (entry.startsWith("...")) return undefined;
    const quoted = /^(["'])((?:\\.|(?!\1).)*)\1/.exec(entry);
    const name = quoted ? quoted[2] : /^[\w$]+/.exec(entry)?.[0];
    if (name === undefined) return undefined; // a computed key
    names.push(name);
  }
  return names;
}

/** `dryRun` as the user types it: `--dry-run`. */
export function flagName(key: string): string {
  return `--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
}

/**
 * Why the flags given do not fit the entrypoint's, or undefined when they do. `where` names it for the
 * message (`app.ts::main`).
 */
export function unknownFlags(
  given: Record<string, unknown>,
  known: string[] | undefined,
  where: string,
): string | undefined {
  if (known === undefined) return undefined;
  const unknown = Object.keys(given).filter((key) => !known.includes(key));
  if (unknown.length === 0) return undefined;
  const takes = known.length === 0 ? "it takes no flags" : `its flags are ${known.map(flagName).join(", ")}`;
  return `${where} has no flag ${unknown.map(flagName).join(", ")}: ${takes} (the keys its parameter destructures)`;
}

function skipSpace(source: string, i: number): number {
  while (i < source.length && /\s/.test(source[i]!)) i++;
  return i;
}

/** The index of the quote that closes the string opened at `i`. */
function skipString(source: string, i: number): number {
  const quote = source[i];
  for (i++; i < source.length; i++) {
    if (source[i] === "\\") i++;
    else if (source[i] === quote) return i;
  }
  return i;
}
