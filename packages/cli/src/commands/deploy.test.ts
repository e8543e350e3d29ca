import { describe, expect, it } from "vitest";
import { callHint } from "./deploy.js";

describe("callHint", () => {
  it("says Function.fromName for functions and Cls.fromName for classes", () => {
    expect(callHint("shop", [{ name: "Model", kind: "class" }])).toBe('call it with Cls.fromName("shop", "Model")');
    expect(callHint("shop", [{ name: "square", kind: "function" }])).toBe(
      'call it with Function.fromName("shop", "square")',
    );
    expect(
      callHint("shop", [
        { name: "square", kind: "function" },
        { name: "Model", kind: "class" },
      ]),
    ).toBe('call them with Function.fromName("shop", "square") or Cls.fromName("shop", "Model")');
  });

  it("leaves out web functions, which are reached by URL", () => {
    const web = { kind: "fetch", label: "site" };
    expect(callHint("shop", [{ name: "site", kind: "function", web }])).toBeUndefined();
    expect(
      callHint("shop", [
        { name: "site", kind: "function", web },
        { name: "square", kind: "function" },
      ]),
    ).toBe('call it with Function.fromName("shop", "square")');
  });
});
