import { readFileSync } from "node:fs";
import { credentialOf, readProfiles, resolveProfile } from "skiff/profiles";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sendStream } from "./send-stream.js";
import { Stack } from "./stack.js";

const GB = 1_000_000_000;
const MiB = 1024 * 1024;

/** A figure of /proc/PID/status, in bytes. */
function memoryOf(pid: number, field: "VmRSS" | "VmHWM"): number {
  const line = readFileSync(`/proc/${pid}/status`, "utf8").match(new RegExp(`^${field}:\\s+(\\d+) kB`, "m"));
  if (!line) throw new Error(`no ${field} for process ${pid}`);
  return Number(line[1]) * 1024;
}

/** 1 GB bodies against the server process: refused or streamed to disk, never held in its memory. */
describe("request size limits", () => {
  let stack: Stack;
  let auth: Record<string, string>;
  beforeAll(async () => {
    stack = await Stack.start();
    auth = { authorization: `Bearer ${credentialOf(resolveProfile(await readProfiles(stack.home), {}))}` };
  });
  afterAll(async () => {
    await stack?.stop();
  });

  it("keeps the server within 100 MB while it is sent 1 GB bodies, and answers 413 with the limit", async () => {
    const pid = stack.server!.pid!;
    // One blob upload first, so what any upload needs once is in memory before the measure starts.
    await sendStream(stack.url, "PUT", `/v1/blobs/${"0".repeat(64)}`, auth, 8 * MiB);
    const before = memoryOf(pid, "VmRSS");
    const peakBefore = memoryOf(pid, "VmHWM");
    let peak = before;
    const sampler = setInterval(() => {
      peak = Math.max(peak, memoryOf(pid, "VmRSS"));
    }, 20);
    try {
      const json = { ...auth, "content-type": "application/json" };
      const secrets = await sendStream(stack.url, "POST", "/v1/secrets", json, GB);
      expect(secrets.status).toBe(413);
      expect(JSON.parse(secrets.body).error).toMatchObject({ code: "PAYLOAD_TOO_LARGE", limit: MiB });

      const apps = await sendStream(stack.url, "POST", "/v1/apps", { ...json, "content-length": String(GB) }, GB);
      expect(apps.status).toBe(413);
      expect(JSON.parse(apps.body).error).toMatchObject({ code: "PAYLOAD_TOO_LARGE", limit: 8 * MiB });

      const oversized = { ...auth, "content-length": String(5 * 1024 * MiB) };
      const declared = await sendStream(stack.url, "PUT", `/v1/blobs/${"1".repeat(64)}`, oversized, GB);
      expect(declared.status).toBe(413);
      expect(JSON.parse(declared.body).error).toMatchObject({ code: "PAYLOAD_TOO_LARGE", limit: 4 * 1024 * MiB });

      // Within the limit but not the bytes its URL names: all of it streams to disk, then it is refused.
      const wrong = await sendStream(
        stack.url,
        "PUT",
        `/v1/blobs/${"2".repeat(64)}`,
        { ...auth, "content-length": String(GB) },
        GB,
      );
      expect(wrong.status).toBe(400);
      expect(JSON.parse(wrong.body).error.message).toMatch(/do not match/);
    } finally {
      clearInterval(sampler);
    }
    expect((peak - before) / MiB).toBeLessThan(100);
    // The high-water mark catches a peak between samples (it may stand higher already, from the start).
    expect(memoryOf(pid, "VmHWM")).toBeLessThanOrEqual(Math.max(peakBefore, before + 100 * MiB));
  }, 300_000);
});
