import { type ColdStart, coldStartMs, orderedPhases } from "@skiff/protocol";

/** A duration as the container list shows it: milliseconds up to 10 s, then seconds with one decimal. */
function duration(ms: number): string {
  return ms < 10_000 ? `${ms} ms` : `${(ms / 1000).toFixed(1)} s`;
}

/** A container's START column: `booted 912 ms` (the sum of its phases); "-" until it runs. */
export function formatStart(start: ColdStart | undefined): string {
  return start ? `${start.kind} ${duration(coldStartMs(start))}` : "-";
}

/**
 * A container's start phase by phase, in the order they happen, then its first input:
 * `placement 12 ms · prepare 3 ms · create 80 ms · boot 450 ms · load 120 ms · first input done 35 ms after ready`
 * (after ready, not the input's own time: a warm container may wait long for its first).
 */
export function formatPhases(start: ColdStart | undefined, firstInputMs: number | undefined): string {
  const parts = start ? orderedPhases(start.phases).map(([name, ms]) => `${name} ${duration(ms)}`) : ["no timings yet"];
  if (firstInputMs !== undefined) parts.push(`first input done ${duration(firstInputMs)} after ready`);
  return parts.join(" · ");
}
