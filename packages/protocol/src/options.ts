/**
 * Options Skiff means to have (see the design) but does not implement yet, with what each would do. They
 * are refused by name, never ignored: a function that asks for a GPU must not quietly run without one.
 */
export const FUTURE_OPTIONS: Readonly<Record<string, string>> = {
  gpu: "GPUs",
  ephemeralDisk: "ephemeral disks",
  region: "placement by region",
  cloud: "placement by cloud",
};

/**
 * The least memory a container may have, in MiB. Measured: Node with the runner is about 50 MiB resident
 * once started (runc), and a 16 MiB gVisor container is killed while it starts; 48 MiB starts.
 */
export const MIN_MEMORY_MIB = 64;

/**
 * Why an options object is refused, or undefined: its first key that is planned but not implemented,
 * or unknown (with the nearest known name). `where` names what the options belong to.
 * @example optionsProblem('function "f"', { gpu: "A10G" }, ["cpu"]) // 'function "f": option "gpu" is not supported yet ...'
 */
export function optionsProblem(where: string, options: object, known: readonly string[]): string | undefined {
  for (const key of Object.keys(options)) {
    if (known.includes(key)) continue;
    if (Object.hasOwn(FUTURE_OPTIONS, key)) {
      return `${where}: option "${key}" is not supported yet (Skiff has no ${FUTURE_OPTIONS[key]} yet): remove it`;
    }
    const near = closestName(key, known);
    return `${where}: unknown option "${key}"${near ? ` (did you mean "${near}"?)` : ""}; known options: ${known.join(", ")}`;
  }
  return undefined;
}

/** The name in `names` nearest to `name` (case aside, a few edits away), if one is near enough. */
export function closestName(name: string, names: readonly string[]): string | undefined {
  const lower = name.toLowerCase();
  let best: { name: string; distance: number } | undefined;
  for (const candidate of names) {
    const other = candidate.toLowerCase();
    // One name inside the other ("memoryMiB", "timeoutMs") is as near as a typo.
    const contains = Math.min(lower.length, other.length) >= 3 && (other.includes(lower) || lower.includes(other));
    const distance = contains ? 1 : editDistance(lower, other);
    if (!best || distance < best.distance) best = { name: candidate, distance };
  }
  return best && best.distance <= Math.max(2, Math.floor(name.length / 3)) ? best.name : undefined;
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      current[j] = Math.min(previous[j]! + 1, current[j - 1]! + 1, previous[j - 1]! + cost);
    }
    previous = current;
  }
  return previous[b.length]!;
}
