import { describe, expect, it } from "vitest";
import { docsPage } from "./docs-page.js";

describe("docsPage", () => {
  const hostile = "<!--<script>x()</script></script><img src=x onerror=y()>";
  const json = JSON.stringify({ info: { title: hostile }, paths: { "/": { get: { description: hostile } } } });
  const page = docsPage(hostile, json);

  it("embeds the document so that no string in it can end or bend its script element", () => {
    const embedded = /<script type="application\/json" id="openapi">([\s\S]*?)<\/script>/.exec(page)?.[1] ?? "";
    expect(embedded).not.toContain("<");
    expect(JSON.parse(embedded)).toEqual(JSON.parse(json));
  });

  it("escapes the title it writes into the page's head", () => {
    expect(page).toContain("<title>&lt;!--&lt;script&gt;x()&lt;/script&gt;");
  });
});
