import { describe, expect, it } from "vitest";
import { Cron, Period, toScheduleSpec } from "./schedule.js";

const where = 'function "f"';
const spec = (schedule: unknown) => toScheduleSpec(schedule, where);

describe("toScheduleSpec", () => {
  it("normalizes cron expressions and timezones", () => {
    expect(spec(Cron("0 3 * * *"))).toEqual({ cron: "0 3 * * *", timezone: "UTC" });
    expect(spec(Cron("  0  3 * *   *", { timezone: "europe/paris" }))).toEqual({
      cron: "0 3 * * *",
      timezone: "Europe/Paris",
    });
    expect(spec(Cron("@Daily"))).toEqual({ cron: "@daily", timezone: "UTC" });
    for (const cron of [
      "*/15 * * * *",
      "0 0 3 * * *",
      "0 8 * * MON-FRI",
      "0 3 1-31/2 jan,jul *",
      "0 3 L * *",
      "0 3 15W * *",
      "0 3 * * FRI#2",
      "0 3 * * 5L",
      "0 3 ? * 0-7",
      "*/60 * * * *",
    ]) {
      expect(spec(Cron(cron))).toEqual({ cron, timezone: "UTC" });
    }
  });

  it("refuses bad cron expressions and timezones, saying what to write", () => {
    const cases: [string, RegExp][] = [
      ["* * *", /it has 3 fields, not 5 \(or 6 with seconds\)/],
      ["61 * * * *", /minute "61": 61 is outside 0-59/],
      ["0 24 * * *", /hour "24": 24 is outside 0-23/],
      ["0 3 0 * *", /day-of-month "0": 0 is outside 1-31/],
      ["0 3 * 13 *", /month "13": 13 is outside 1-12/],
      ["0 3 * * 8", /day-of-week "8": 8 is outside 0-7/],
      ["0 3 * * MOON", /day-of-week "MOON": "moon" is not a number or a name \(SUN-SAT\)/],
      ["*/0 * * * *", /the step in "\*\/0" must be a whole number from 1 to 60/],
      ["5/5 * * * *", /a step needs "\*" or a range before it/],
      ["5-1 * * * *", /the range "5-1" goes backwards/],
      ["0 3 * * 1#6", /day-of-week "1#6"/],
      ["@reboot", /@reboot is not one of @yearly/],
      ["* * * * * * *", /it has 7 fields/],
    ];
    for (const [cron, problem] of cases) {
      expect(() => spec(Cron(cron))).toThrow(RangeError);
      expect(() => spec(Cron(cron))).toThrow(problem);
      expect(() => spec(Cron(cron))).toThrow(/^function "f": schedule Cron\(.*write minute hour day-of-month/);
    }
    expect(() => spec(Cron("0 3 * * *", { timezone: "Mars/Base" }))).toThrow(
      /^function "f": schedule timezone "Mars\/Base" is not an IANA timezone: use a name such as "Europe\/Paris"/,
    );
    expect(() => spec(Cron("0 3 * * *", { timezone: "" }))).toThrow(/is not an IANA timezone/);
  });

  it("adds up the units of a period", () => {
    expect(spec(Period({ hours: 1 }))).toEqual({ periodMs: 3_600_000 });
    expect(spec(Period({ days: 1, hours: 2, minutes: 3, seconds: 4.5 }))).toEqual({
      periodMs: 86_400_000 + 7_200_000 + 180_000 + 4500,
    });
    expect(spec(Period({ seconds: 1 }))).toEqual({ periodMs: 1000 });
  });

  it("refuses periods under a second, unknown units and bad numbers", () => {
    expect(() => spec(Period({ seconds: 0.5 }))).toThrow(
      /^function "f": schedule Period\({ seconds: 0.5 }\) is under 1 s: use at least Period\({ seconds: 1 }\)/,
    );
    expect(() => spec(Period({}))).toThrow(/is under 1 s/);
    expect(() => spec(Period({ weeks: 1 } as never))).toThrow(
      /schedule Period\({ weeks: 1 }\) has an unknown unit "weeks": use days, hours, minutes and seconds/,
    );
    expect(() => spec(Period({ hours: -1 }))).toThrow(/hours must be a number of 0 or more/);
    expect(() => spec(Period({ hours: "1" as never }))).toThrow(/hours must be a number of 0 or more/);
  });

  it("refuses values not made with Cron or Period, suggesting the call to write", () => {
    expect(() => spec("0 3 * * *")).toThrow(TypeError);
    expect(() => spec("0 3 * * *")).toThrow(
      /^function "f": schedule must be made with Cron or Period \(import them from "skiff"\): write Cron\("0 3 \* \* \*"\)/,
    );
    expect(() => spec(60)).toThrow(/write Period\({ seconds: 60 }\)/);
    expect(() => spec({ cron: "0 3 * * *" })).toThrow(/write Cron\("0 3 \* \* \*"\) or Period\({ hours: 1 }\)/);
    expect(() => spec(null)).toThrow(TypeError);
  });

  it("reads schedules made by another copy of the SDK (a brand, not instanceof)", () => {
    const foreign = { [Symbol.for("skiff.schedule")]: "period", period: { minutes: 5 } };
    expect(spec(foreign)).toEqual({ periodMs: 300_000 });
  });
});
