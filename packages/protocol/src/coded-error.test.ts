import { describe, expect, it } from "vitest";
import { CodedError } from "./coded-error.js";

class LookupError extends CodedError<"MISSING"> {
  constructor(message: string, options?: { cause?: unknown }) {
    super("MISSING", message, options);
    this.name = "LookupError";
  }
}

describe("CodedError", () => {
  it("keeps a subclass's code, name, cause and instanceof", () => {
    const cause = new Error("disk");
    const error = new LookupError("no row 7: create it first", { cause });
    expect(error).toBeInstanceOf(LookupError);
    expect(error).toBeInstanceOf(CodedError);
    expect(error).toBeInstanceOf(Error);
    expect(error).toMatchObject({ code: "MISSING", name: "LookupError", message: "no row 7: create it first", cause });
    expect(new CodedError("NOT_FOUND", "gone").name).toBe("CodedError");
  });
});
