import { describe, expect, it } from "vitest";
import { formatWebUrls } from "./web-urls.js";

describe("formatWebUrls", () => {
  it("prints one line per label with the URLs lined up", () => {
    expect(
      formatWebUrls([
        { label: "gen", url: "http://127.0.0.1:7420/w/main/hello/gen" },
        { label: "site-2", url: "http://127.0.0.1:7420/w/main/hello/site-2" },
      ]),
    ).toEqual([
      "  gen     http://127.0.0.1:7420/w/main/hello/gen",
      "  site-2  http://127.0.0.1:7420/w/main/hello/site-2",
    ]);
  });
});
