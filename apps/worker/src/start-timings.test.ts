import { describe, expect, it } from "vitest";
import { StartTimings } from "./start-timings.js";

/** A clock the test moves by hand. */
function clock(start = 1000.4) {
  let now = start;
  return { now: () => now, advance: (ms: number) => (now += ms) };
}

describe("StartTimings", () => {
  it("times each phase from the last lap, and the boot until ready less the runner's own phases", () => {
    const time = clock();
    const timings = new StartTimings(time.now);
    time.advance(40);
    timings.lap("prepare");
    time.advance(15);
    timings.lap("create");
    time.advance(500);
    expect(timings.ready({ load: 120, enter: 30 })).toEqual({
      kind: "booted",
      phases: { prepare: 40, create: 15, boot: 350, load: 120, enter: 30 },
    });
  });

  it("rounds from the start, so the phases add up to the whole start", () => {
    const time = clock(0);
    const timings = new StartTimings(time.now);
    for (const phase of ["a", "b", "c"]) {
      time.advance(10.4);
      timings.lap(phase);
    }
    time.advance(0.4);
    const { phases } = timings.ready();
    expect(Object.values(phases).reduce((sum, ms) => sum + ms, 0)).toBe(Math.round(31.6));
    expect(phases).toEqual({ a: 10, b: 11, c: 10, boot: 1 });
  });

  it("ends in `restore` for a restored container, and never counts a phase below zero", () => {
    const time = clock();
    const timings = new StartTimings(time.now);
    time.advance(5);
    timings.lap("prepare");
    timings.startsAs("restored");
    time.advance(20);
    // The runner's clock ran a little ahead of ours: its `enter` cannot make the restore negative.
    expect(timings.ready({ enter: 25 })).toEqual({ kind: "restored", phases: { prepare: 5, restore: 0, enter: 25 } });
  });
});
