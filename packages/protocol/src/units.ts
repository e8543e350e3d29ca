/** A duration: seconds as a number, or a string such as "500ms", "30s", "10m", "2h", "1d". */
export type Duration = number | string;
/**
 * A size: MiB as a number, or a string such as "512MiB", "4GiB", "200MB"; as in Kubernetes, "4Gi" and
 * "512Mi" are binary and "4G" and "200M" decimal.
 */
export type Size = number | string;

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const SIZE_UNITS: Record<string, number> = {
  b: 1 / (1024 * 1024),
  kb: 1000 / (1024 * 1024),
  kib: 1 / 1024,
  mb: 1_000_000 / (1024 * 1024),
  mib: 1,
  gb: 1_000_000_000 / (1024 * 1024),
  gib: 1024,
};

/** Parses a friendly duration into milliseconds. `parseDuration("10m") === 600_000`. */
export function parseDuration(value: Duration, what = "duration"): number {
  if (typeof value === "number") {
    if (!Number.isFinite(value) || value < 0)
      throw new RangeError(`${what} must be a non-negative number of seconds, got ${value}`);
    return Math.round(value * 1000);
  }
  const match = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$/i.exec(value);
  if (!match)
    throw new RangeError(
      `${what} "${value}" is not a duration: use seconds (30) or a string like "500ms", "30s", "10m", "2h"`,
    );
  return Math.round(Number(match[1]) * (DURATION_UNITS[match[2]!.toLowerCase()] ?? 1));
}

/** Parses a friendly size into MiB. `parseSize("4GiB") === 4096`. */
export function parseSize(value: Size, what = "size"): number {
  if (typeof value === "number") {
    if (!Number.isFinite(value) || value <= 0)
      throw new RangeError(`${what} must be a positive number of MiB, got ${value}`);
    return value;
  }
  const match = /^\s*(\d+(?:\.\d+)?)\s*(?:([kmg])(i?)b?|(b))\s*$/i.exec(value);
  if (!match) throw new RangeError(`${what} "${value}" is not a size: use MiB (512) or a string like "512MiB", "4GiB"`);
  const unit = match[4] ? "b" : `${match[2]!.toLowerCase()}${match[3] ? "ib" : "b"}`;
  return Number(match[1]) * (SIZE_UNITS[unit] ?? 1);
}

/** A byte count as people read it: `1 MiB`, `1.5 GiB`, `512 B`. */
export function formatBytes(bytes: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${Number.isInteger(value) ? value : value.toFixed(1)} ${units[unit]}`;
}
