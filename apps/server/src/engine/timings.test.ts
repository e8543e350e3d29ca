import { describe, expect, it } from "vitest";
import { FunctionTimings } from "./timings.js";

describe("FunctionTimings", () => {
  it("scales while it knows nothing, or has no container", () => {
    const timings = new FunctionTimings();
    expect(timings.worthAnotherContainer("f", 10, 1)).toBe(true);
    timings.noteRun("f", 2);
    expect(timings.worthAnotherContainer("f", 10, 0)).toBe(true);
  });

  it("does not start containers for work the live ones finish before a new one would be ready", () => {
    const timings = new FunctionTimings();
    timings.noteRun("fast", 2);
    timings.noteColdStart("fast", 500);
    expect(timings.worthAnotherContainer("fast", 10, 1)).toBe(false); // 20 ms of work
    timings.noteRun("slow", 100);
    timings.noteColdStart("slow", 500);
    expect(timings.worthAnotherContainer("slow", 200, 4)).toBe(true); // 5 s of work
  });

  it("averages, so one outlier does not swing the decision", () => {
    const timings = new FunctionTimings();
    timings.noteRun("f", 10);
    timings.noteRun("f", 1000);
    timings.noteColdStart("f", 500);
    // (10 * 0.8 + 1000 * 0.2) = 208 ms per input: 2 inputs on 1 slot drain in 416 ms, under 500.
    expect(timings.worthAnotherContainer("f", 2, 1)).toBe(false);
  });
});
