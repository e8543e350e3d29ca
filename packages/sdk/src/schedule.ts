import type { Schedule as ScheduleSpec } from "@skiff/protocol";

// A brand, not instanceof: the schedule may come from another copy of the SDK than the one reading it.
const SCHEDULE: unique symbol = Symbol.for("skiff.schedule");

/** Units of `Period`; they add up. */
export interface PeriodOptions {
  days?: number;
  hours?: number;
  minutes?: number;
  seconds?: number;
}

/** What `Cron(...)` returns: pass it as `schedule` of `app.function`. */
export interface CronSchedule {
  readonly [SCHEDULE]: "cron";
  readonly expression: string;
  readonly timezone: string | undefined;
}

/** What `Period(...)` returns: pass it as `schedule` of `app.function`. */
export interface PeriodSchedule {
  readonly [SCHEDULE]: "period";
  readonly period: PeriodOptions;
}

/** When a deployed function runs by itself: `Cron(...)` or `Period(...)`. */
export type Schedule = CronSchedule | PeriodSchedule;

/**
 * Runs a deployed function at the times a cron expression names, in a timezone (IANA name, default
 * "UTC"): five fields, minute hour day-of-month month day-of-week, with an optional seconds field
 * first, or a nickname such as "@daily". Only deployed apps (`skiff deploy`) run schedules.
 * @example
 * export const nightly = app.function({ schedule: Cron("0 3 * * *", { timezone: "Europe/Paris" }) }, job);
 */
export function Cron(expression: string, options: { timezone?: string } = {}): CronSchedule {
  return { [SCHEDULE]: "cron", expression, timezone: options.timezone };
}

/**
 * Runs a deployed function every period, counted from when the schedule was first deployed (the first
 * run is one period after). A run that is still going when the next one is due makes that one skip.
 * @example
 * export const hourly = app.function({ schedule: Period({ hours: 1 }) }, job);
 */
export function Period(period: PeriodOptions): PeriodSchedule {
  return { [SCHEDULE]: "period", period };
}

const PERIOD_UNITS: Record<keyof PeriodOptions, number> = {
  days: 86_400_000,
  hours: 3_600_000,
  minutes: 60_000,
  seconds: 1000,
};

/**
 * Validates a schedule and normalizes it into the spec the server runs (whitespace collapsed, the
 * timezone's canonical name, the period in ms). Messages start with `${where}: schedule`.
 */
export function toScheduleSpec(schedule: unknown, where: string): ScheduleSpec {
  const kind = typeof schedule === "object" && schedule !== null ? (schedule as Schedule)[SCHEDULE] : undefined;
  if (kind === "cron") return cronSpec(schedule as CronSchedule, where);
  if (kind === "period") return periodSpec(schedule as PeriodSchedule, where);
  const hint =
    typeof schedule === "string"
      ? `Cron(${JSON.stringify(schedule)})`
      : typeof schedule === "number"
        ? `Period({ seconds: ${schedule} })`
        : `Cron("0 3 * * *") or Period({ hours: 1 })`;
  throw new TypeError(`${where}: schedule must be made with Cron or Period (import them from "skiff"): write ${hint}`);
}

function cronSpec(schedule: CronSchedule, where: string): ScheduleSpec {
  const { expression, timezone = "UTC" } = schedule;
  if (typeof expression !== "string") {
    throw new TypeError(`${where}: schedule Cron(expression) needs a string, such as Cron("0 3 * * *")`);
  }
  const cron = expression.trim().split(/\s+/).join(" ");
  const problem = cronProblem(cron);
  if (problem !== undefined) {
    throw new RangeError(
      `${where}: schedule Cron(${JSON.stringify(expression)}): ${problem}; write minute hour day-of-month month ` +
        `day-of-week, with an optional seconds field first, e.g. "0 3 * * *" for 03:00 every day or "*/15 * * * *"`,
    );
  }
  if (typeof timezone !== "string") {
    throw new TypeError(`${where}: schedule timezone must be a string such as "Europe/Paris"`);
  }
  const canonical = canonicalTimezone(timezone);
  if (canonical === undefined) {
    throw new RangeError(
      `${where}: schedule timezone ${JSON.stringify(timezone)} is not an IANA timezone: use a name such as ` +
        `"Europe/Paris", "America/New_York" or "UTC" (the default)`,
    );
  }
  return { cron: cron.startsWith("@") ? cron.toLowerCase() : cron, timezone: canonical };
}

function periodSpec(schedule: PeriodSchedule, where: string): ScheduleSpec {
  const { period } = schedule;
  const written = describePeriod(period);
  if (typeof period !== "object" || period === null) {
    throw new TypeError(`${where}: schedule Period(options) needs an object, such as Period({ hours: 1 })`);
  }
  let periodMs = 0;
  for (const [unit, value] of Object.entries(period)) {
    const scale = PERIOD_UNITS[unit as keyof PeriodOptions];
    if (scale === undefined) {
      throw new RangeError(
        `${where}: schedule ${written} has an unknown unit "${unit}": use days, hours, minutes and seconds, e.g. Period({ days: 7 })`,
      );
    }
    if (value === undefined) continue;
    if (typeof value !== "number" || !Number.isFinite(value) || value < 0) {
      throw new RangeError(`${where}: schedule ${written}: ${unit} must be a number of 0 or more`);
    }
    periodMs += value * scale;
  }
  periodMs = Math.round(periodMs);
  if (periodMs < 1000) {
    throw new RangeError(`${where}: schedule ${written} is under 1 s: use at least Period({ seconds: 1 })`);
  }
  return { periodMs };
}

function describePeriod(period: unknown): string {
  if (typeof period !== "object" || period === null) return `Period(${String(period)})`;
  const parts = Object.entries(period).map(([unit, value]) => `${unit}: ${JSON.stringify(value)}`);
  return `Period({ ${parts.join(", ")} })`;
}

/** The canonical name of an IANA timezone ("europe/paris" → "Europe/Paris"), or undefined if unknown. */
function canonicalTimezone(timezone: string): string | undefined {
  if (timezone === "") return undefined;
  try {
    return new Intl.DateTimeFormat(undefined, { timeZone: timezone }).resolvedOptions().timeZone;
  } catch {
    return undefined;
  }
}

// The syntax croner (on the server) accepts in its 5-or-6-parts mode. The server parses the expression
// again with croner at deploy; this check exists so that a typo fails at `app.function`, with the line,
// without loading croner into every bundle and container.
const NICKNAMES = new Set(["@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"]);
const MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"];
const DAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

interface Field {
  name: string;
  min: number;
  max: number;
  /** Names that stand for numbers, from `min` on (JAN = 1, SUN = 0). */
  names?: string[];
}

const FIELDS: Field[] = [
  { name: "second", min: 0, max: 59 },
  { name: "minute", min: 0, max: 59 },
  { name: "hour", min: 0, max: 23 },
  { name: "day-of-month", min: 1, max: 31 },
  { name: "month", min: 1, max: 12, names: MONTHS },
  { name: "day-of-week", min: 0, max: 7, names: DAYS },
];

/** What is wrong with a cron expression, or undefined if nothing is. */
function cronProblem(cron: string): string | undefined {
  if (cron.startsWith("@")) {
    return NICKNAMES.has(cron.toLowerCase()) ? undefined : `${cron} is not one of ${[...NICKNAMES].join(", ")}`;
  }
  const parts = cron === "" ? [] : cron.split(" ");
  if (parts.length !== 5 && parts.length !== 6) return `it has ${parts.length} fields, not 5 (or 6 with seconds)`;
  const fields = parts.length === 6 ? FIELDS : FIELDS.slice(1);
  for (const [index, part] of parts.entries()) {
    const field = fields[index]!;
    for (const item of part.split(",")) {
      const problem = itemProblem(item.toLowerCase(), field);
      if (problem !== undefined) return `${field.name} "${part}": ${problem}`;
    }
  }
  return undefined;
}

function itemProblem(item: string, field: Field): string | undefined {
  if (item === "*" || item === "?") return undefined;
  const [range = "", step, extra] = item.split("/");
  if (extra !== undefined) return `"${item}" has more than one "/"`;
  if (step !== undefined) {
    const span = field.max - field.min + 1;
    if (!/^\d+$/.test(step) || Number(step) < 1 || Number(step) > span) {
      return `the step in "${item}" must be a whole number from 1 to ${span}`;
    }
    if (range === "*") return undefined;
    if (!range.includes("-")) return `a step needs "*" or a range before it, as in "*/${step}" or "0-30/${step}"`;
  }
  if (field.name === "day-of-month") {
    if (range === "l" || range === "lw") return step === undefined ? undefined : `"${item}" cannot have a step`;
    const weekday = /^(\d+)w$/.exec(range);
    if (weekday) return valueProblem(weekday[1]!, field);
  }
  if (field.name === "day-of-week") {
    const nth = /^(\w+?)(l|#[1-5l])$/.exec(range);
    if (nth && step === undefined) return valueProblem(nth[1]!, field);
  }
  const bounds = range.split("-");
  if (bounds.length > 2) return `"${item}" is not a value or a range`;
  for (const bound of bounds) {
    const problem = valueProblem(bound, field);
    if (problem !== undefined) return problem;
  }
  if (bounds.length === 2 && numberOf(bounds[0]!, field)! > numberOf(bounds[1]!, field)!) {
    return `the range "${range}" goes backwards`;
  }
  return undefined;
}

function valueProblem(text: string, field: Field): string | undefined {
  const value = numberOf(text, field);
  if (value === undefined) {
    const names = field.names
      ? ` or a name (${field.names[0]!.toUpperCase()}-${field.names.at(-1)!.toUpperCase()})`
      : "";
    return `"${text}" is not a number${names}`;
  }
  if (value < field.min || value > field.max) return `${value} is outside ${field.min}-${field.max}`;
  return undefined;
}

function numberOf(text: string, field: Field): number | undefined {
  if (/^\d+$/.test(text)) return Number(text);
  const index = field.names?.indexOf(text) ?? -1;
  return index < 0 ? undefined : index + (field.name === "month" ? 1 : 0);
}
