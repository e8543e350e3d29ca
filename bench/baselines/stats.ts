import { pathToFileURL } from "node:url";

/** Summary statistics of a set of samples. */
export interface Summary {
  p50: number;
  p99: number;
  mean: number;
  min: number;
  max: number;
  n: number;
}

/**
 * The p-th percentile (0 ≤ p ≤ 100) of `samples`, by linear interpolation between closest ranks.
 * Accepts sorted or unsorted input (it sorts a copy); NaN for an empty array.
 */
export function percentile(samples: readonly number[], p: number): number {
  if (samples.length === 0) return Number.NaN;
  const sorted = [...samples].sort((a, b) => a - b);
  const rank = (Math.min(Math.max(p, 0), 100) / 100) * (sorted.length - 1);
  const lo = Math.floor(rank);
  const hi = Math.ceil(rank);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (rank - lo);
}

/** The median of `samples` (NaN for an empty array). */
export function median(samples: readonly number[]): number {
  return percentile(samples, 50);
}

/** p50, p99, mean, min, max and count of `samples` (NaN figures for an empty array). */
export function summarize(samples: readonly number[]): Summary {
  const n = samples.length;
  if (n === 0) return { p50: Number.NaN, p99: Number.NaN, mean: Number.NaN, min: Number.NaN, max: Number.NaN, n };
  let sum = 0;
  let min = Number.POSITIVE_INFINITY;
  let max = Number.NEGATIVE_INFINITY;
  for (const s of samples) {
    sum += s;
    if (s < min) min = s;
    if (s > max) max = s;
  }
  return { p50: percentile(samples, 50), p99: percentile(samples, 99), mean: sum / n, min, max, n };
}

/**
 * Whether the module with this `import.meta.url` is the `.ts` script Node was started with. Inside a bundle
 * (dist/bench.mjs) every module shares the bundle's URL, so only a source file run directly counts.
 */
export function isMain(metaUrl: string): boolean {
  return process.argv[1] !== undefined && metaUrl.endsWith(".ts") && metaUrl === pathToFileURL(process.argv[1]).href;
}
