import { setTimeout as sleep } from "node:timers/promises";
import { Pool } from "undici";
import { summarize } from "./stats.js";

/** Options for {@link httpLoad}. */
export interface LoadOptions {
  /** What every request GETs. */
  url: string;
  /** Connections, each with one request in flight at a time (closed loop). */
  connections: number;
  /** How long requests are counted. */
  durationMs: number;
  /** Requests sent first, for as long, and not counted. */
  warmupMs?: number;
  /** Sees each counted answer's status and body. */
  onAnswer?: (status: number, body: string) => void;
  /** Called just before the counted requests start and once they have all ended (to sample CPU times). */
  onCounting?: (phase: "start" | "end") => Promise<void>;
}

/** What {@link httpLoad} measured; latencies are of 200 answers, from the request to the body's end. */
export interface LoadResult {
  /** Answers with status 200 that ended within the counted time. */
  ok: number;
  /** 200 answers per second. */
  perSec: number;
  p50Ms: number;
  p99Ms: number;
  /** Answers by status, 200 included. */
  statuses: Record<string, number>;
  /** Requests that got no answer, by error code. */
  failures: Record<string, number>;
}

/**
 * A closed-loop HTTP load: `connections` kept-alive connections (undici), each sending its next GET as soon
 * as the last answer's body has ended. A 503 is a refusal the server means (its wait queue is full, or no
 * container was ready in time): that connection waits its `Retry-After`, as a client that follows it
 * would, before it sends again.
 */
export async function httpLoad(options: LoadOptions): Promise<LoadResult> {
  const url = new URL(options.url);
  const path = `${url.pathname}${url.search}`;
  const pool = new Pool(url.origin, {
    connections: options.connections,
    pipelining: 1,
    // A request to a pool with no container waits up to its startupTimeout (5 minutes by default).
    headersTimeout: 330_000,
    bodyTimeout: 330_000,
    connectTimeout: 30_000,
  });
  const latencies: number[] = [];
  const statuses: Record<string, number> = {};
  const failures: Record<string, number> = {};
  let counting = false;
  let countUntil = 0;

  const loop = async (until: number) => {
    while (performance.now() < until) {
      const start = performance.now();
      try {
        const { statusCode, headers, body } = await pool.request({ path, method: "GET" });
        const text = await body.text();
        const end = performance.now();
        if (counting && end <= countUntil) {
          statuses[statusCode] = (statuses[statusCode] ?? 0) + 1;
          if (statusCode === 200) latencies.push(end - start);
          options.onAnswer?.(statusCode, text);
        }
        if (statusCode === 503) {
          const retryS = Number(headers["retry-after"] ?? 1);
          await sleep(Math.min(Math.max(retryS, 0) * 1000 || 1000, Math.max(0, until - performance.now())));
        }
      } catch (error) {
        if (counting && performance.now() <= countUntil) {
          const code = (error as { code?: string }).code ?? (error as Error).name;
          failures[code] = (failures[code] ?? 0) + 1;
        }
        // Not a hot loop on a refused connection.
        await sleep(10);
      }
    }
  };

  try {
    const warmupMs = options.warmupMs ?? 0;
    if (warmupMs > 0) {
      const until = performance.now() + warmupMs;
      await Promise.all(Array.from({ length: options.connections }, () => loop(until)));
    }
    await options.onCounting?.("start");
    counting = true;
    const started = performance.now();
    countUntil = started + options.durationMs;
    await Promise.all(Array.from({ length: options.connections }, () => loop(countUntil)));
    await options.onCounting?.("end");
    const s = summarize(latencies);
    return {
      ok: latencies.length,
      perSec: latencies.length / (options.durationMs / 1000),
      p50Ms: s.p50,
      p99Ms: s.p99,
      statuses,
      failures,
    };
  } finally {
    await pool.destroy();
  }
}
