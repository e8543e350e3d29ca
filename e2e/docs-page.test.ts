import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { type Browser, chromium } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { HOSTILE } from "./fixtures/hostile.js";
import { e2eRuntime, ROOT, Stack } from "./stack.js";
import { urlsIn } from "./web-helpers.js";

const FIXTURE = "e2e/fixtures/web.ts";
/** Debian's Chromium: playwright-core brings no browser, and none can be downloaded here. */
const CHROMIUM = "/usr/bin/chromium";
/** Where CI keeps what a run leaves to look at (`.ci/run` says so); ignored by git. */
const ARTIFACTS = join(ROOT, ".ci", "artifacts");
const SCREENSHOT = join(ARTIFACTS, "docs-page.png");

const hasChromium = existsSync(CHROMIUM);
if (!hasChromium) {
  console.warn(`docs-page.test: skipped: ${CHROMIUM} is absent (scripts/setup.sh installs Debian's chromium as root)`);
}

/**
 * An endpoint's `/docs` page in a real browser (Debian's Chromium, headless, driven by playwright-core),
 * served through the CLI, server gateway, worker relay and a container: it lists the endpoint, its form
 * sends a request and shows the answer, markup in a schema shows as text, and nothing but the endpoint's
 * own URLs is fetched. The page is saved as `.ci/artifacts/docs-page.png`. One runtime is enough: the
 * page is the same on every one.
 */
describe.skipIf(!hasChromium)(`the /docs page in Chromium (${hasChromium ? e2eRuntime() : `no ${CHROMIUM}`})`, () => {
  let stack: Stack;
  let browser: Browser;
  let gen: string;

  beforeAll(async () => {
    stack = await Stack.start();
    const deployed = await stack.run(["deploy", FIXTURE], { timeoutMs: 300_000 });
    expect(deployed.code, deployed.stderr).toBe(0);
    gen = urlsIn(deployed.stderr).gen!;
    // As root, Chromium's sandbox cannot start: the page is our own, served on loopback.
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ["--no-sandbox"] });
  }, 400_000);

  afterAll(async () => {
    await browser?.close();
    await stack?.stop();
  });

  it("lists the endpoint and its schema, runs none of the schema's markup, and answers through its form", async () => {
    const page = await browser.newPage({ viewport: { width: 1000, height: 900 } });
    const errors: string[] = [];
    const elsewhere: string[] = [];
    page.on("pageerror", (error) => errors.push(error.message));
    page.on("dialog", (dialog) => {
      errors.push(`a dialog opened: ${dialog.message()}`);
      void dialog.dismiss();
    });
    page.on("request", (request) => {
      if (!request.url().startsWith(stack.url)) elsewhere.push(request.url());
    });

    try {
      await checkPage();
    } finally {
      // The page as it ended, for CI's artifacts: a failure shows what the browser had.
      mkdirSync(ARTIFACTS, { recursive: true });
      await page.screenshot({ path: SCREENSHOT, fullPage: true });
      await page.close();
    }
    expect(errors).toEqual([]);
    expect(elsewhere).toEqual([]);

    async function checkPage(): Promise<void> {
      const loaded = await page.goto(`${gen}/docs`);
      expect(loaded?.status()).toBe(200);
      const operation = page.locator("#operation");
      await expect.poll(() => operation.locator(".method").textContent()).toBe("POST");
      expect(await page.locator("h1").textContent()).toBe("generate");
      expect(await operation.locator("code.url").textContent()).toBe(`${gen}/`);
      const fields = operation.locator("table.fields").first();
      expect(await fields.locator("td.name").allTextContents()).toEqual(["prompt", "steps", "style"]);
      expect(await fields.locator("td.type").allTextContents()).toEqual(["string", "integer", "string"]);
      expect(await fields.locator("td.notes").allTextContents()).toEqual([
        "required",
        "default 20",
        `default ${JSON.stringify(HOSTILE)}`,
      ]);

      // The markup is shown as the text it is: in the fields, the raw schema and the form's default.
      expect(await fields.locator("tr").nth(1).locator("td").last().textContent()).toBe(`What to generate. ${HOSTILE}`);
      expect(await operation.locator("details pre").textContent()).toContain(
        JSON.stringify(`What to generate. ${HOSTILE}`),
      );
      const example = JSON.parse(await page.locator("#body").inputValue()) as Record<string, unknown>;
      expect(example).toEqual({ prompt: "", steps: 20, style: HOSTILE });
      expect(await page.evaluate(() => (globalThis as { __pwned?: unknown }).__pwned)).toBeUndefined();
      expect(await page.locator("#operation img, #operation script").count()).toBe(0);

      // A refusal, as the form shows it; then an answer, which the screenshot keeps.
      await page.locator("#body").fill(JSON.stringify({ prompt: 5 }));
      await page.locator("#send").click();
      // The first request may start the container.
      await expect.poll(() => page.locator("#status").textContent(), { timeout: 120_000 }).toMatch(/^422/);
      expect(await page.locator("#response").textContent()).toContain('"prompt"');
      await page.locator("#body").fill(JSON.stringify({ prompt: "a cat, from Chromium", steps: 3 }));
      await page.locator("#send").click();
      await expect.poll(() => page.locator("#status").textContent(), { timeout: 30_000 }).toBe("200 OK");
      const answer = JSON.parse((await page.locator("#response").textContent()) ?? "") as unknown;
      expect(answer).toEqual({ status: "generated", prompt: "a cat, from Chromium", steps: 3 });
    }
  }, 240_000);
});
