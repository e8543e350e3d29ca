import type { Capacity } from "@skiff/protocol";

/** What a container asks of a worker. */
export interface Need {
  cpu: number;
  memoryMiB: number;
}

/** A connected worker's capacity and what its containers take of it. */
export interface WorkerRoom {
  capacity: Capacity;
  used: Need;
}

/**
 * Why no connected worker can ever run a container of this size, or undefined if one can (or none is
 * connected: calls then wait for one). Names the largest worker and which option to lower.
 * @example capacityProblem('function "big"', { cpu: 64, memoryMiB: 1024 }, [{ cpu: 2, memoryMiB: 23_962 }])
 * // 'function "big" asks for 64 CPUs; the only worker has 2 CPUs and 23.4 GiB: lower cpu, or add a larger worker'
 */
export function capacityProblem(where: string, need: Need, capacities: Capacity[]): string | undefined {
  if (capacities.length === 0) return undefined;
  if (capacities.some((c) => fits(need, c))) return undefined;
  const cpuFits = capacities.some((c) => c.cpu >= need.cpu);
  const memoryFits = capacities.some((c) => c.memoryMiB >= need.memoryMiB);
  const top = {
    cpu: Math.max(...capacities.map((c) => c.cpu)),
    memoryMiB: Math.max(...capacities.map((c) => c.memoryMiB)),
  };
  // The largest worker in what is lacking: the most memory, the most CPUs, or the most of both.
  const score = (c: Capacity) =>
    (cpuFits ? 0 : c.cpu / top.cpu) +
    (memoryFits ? 0 : c.memoryMiB / top.memoryMiB) +
    (cpuFits === memoryFits ? c.cpu / top.cpu + c.memoryMiB / top.memoryMiB : 0);
  const largest = capacities.reduce((best, c) => (score(c) > score(best) ? c : best));
  const asks =
    cpuFits === memoryFits
      ? `${cpus(need.cpu)} and ${size(need.memoryMiB)}`
      : cpuFits
        ? size(need.memoryMiB)
        : cpus(need.cpu);
  const lower =
    cpuFits === memoryFits
      ? cpuFits
        ? "cpu or memory (no worker has both)"
        : "cpu and memory"
      : cpuFits
        ? "memory"
        : "cpu";
  const which = capacities.length === 1 ? "the only worker has" : "the largest worker has";
  return `${where} asks for ${asks}; ${which} ${cpus(largest.cpu)} and ${size(largest.memoryMiB)}: lower ${lower}, or add a larger worker`;
}

/** What a caller sees while a container waits for room: what it needs and how full the workers are. */
export function waitingForCapacity(where: string, need: Need, workers: WorkerRoom[]): string {
  const sum = (pick: (w: WorkerRoom) => number) => workers.reduce((total, w) => total + pick(w), 0);
  const inUse = `${round(sum((w) => w.used.cpu))} of ${cpus(sum((w) => w.capacity.cpu))} in use, ${size(sum((w) => w.used.memoryMiB))} of ${size(sum((w) => w.capacity.memoryMiB))}`;
  const on = workers.length === 1 ? "" : ` on ${workers.length} workers`;
  return `waiting for capacity: ${where} needs ${cpus(need.cpu)} and ${size(need.memoryMiB)}; ${inUse}${on}`;
}

function fits(need: Need, capacity: Capacity): boolean {
  return capacity.cpu >= need.cpu && capacity.memoryMiB >= need.memoryMiB;
}

function cpus(count: number): string {
  return `${round(count)} ${count === 1 ? "CPU" : "CPUs"}`;
}

function size(mib: number): string {
  return mib < 1024 ? `${round(mib)} MiB` : `${round(mib / 1024)} GiB`;
}

function round(value: number): string {
  return String(Math.round(value * 10) / 10);
}
