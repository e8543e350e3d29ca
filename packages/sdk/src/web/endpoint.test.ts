import { describe, expect, it } from "vitest";
import { z } from "zod";
import { App, collectApp } from "../app.js";

const app = new App("web-test");
const generate = app.endpoint(
  {
    docs: true,
    label: "gen",
    maxBodySize: "1KiB",
    body: z.object({ prompt: z.string().min(1), steps: z.number().int().default(20) }),
  },
  async ({ prompt, steps }) => ({ status: "generated", prompt, steps }),
);
const hello = app.endpoint({ query: z.object({ name: z.string().default("world") }) }, ({ name }) => `Hello, ${name}!`);
const nothing = app.endpoint({ method: "DELETE" }, () => undefined);
collectApp({ app, generate, hello, nothing }, "test.ts");

interface ErrorBody {
  error: { code: string; message: string; requestId?: string; issues: { path: string[] }[] };
}
interface OpenApi {
  paths: Record<
    string,
    Record<string, { requestBody: { content: Record<string, { schema: unknown }> }; responses: object }>
  >;
}
const errorOf = async (response: Response) => ((await response.json()) as ErrorBody).error;

const post = (body: string, path = "/", headers: Record<string, string> = {}) =>
  generate.local(new Request(`http://h${path}`, { method: "POST", body, headers }));

describe("app.endpoint", () => {
  it("answers the parsed body's value as JSON, with the schema's defaults", async () => {
    const response = await post('{"prompt":"a cat"}');
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ status: "generated", prompt: "a cat", steps: 20 });
  });

  it("answers GET with the parsed query, and a string as text", async () => {
    const response = await hello.local(new Request("http://h/?name=Ada"));
    expect(response.headers.get("content-type")).toBe("text/plain; charset=utf-8");
    expect(await response.text()).toBe("Hello, Ada!");
    expect(await (await hello.local(new Request("http://h/"))).text()).toBe("Hello, world!");
    expect((await nothing.local(new Request("http://h/", { method: "DELETE" }))).status).toBe(204);
  });

  it("refuses malformed JSON with 400", async () => {
    const response = await post('{"prompt":', "/", { "x-skiff-request-id": "r1" });
    expect(response.status).toBe(400);
    const error = await errorOf(response);
    expect(error).toMatchObject({ code: "BAD_REQUEST", requestId: "r1" });
    expect(error.message).toMatch(/^the body is not JSON/);
  });

  it("refuses a body that does not match its schema with 422 and the zod issues", async () => {
    const response = await post('{"prompt":"","steps":1.5}');
    expect(response.status).toBe(422);
    const error = await errorOf(response);
    expect(error.message).toBe("the body does not match the endpoint's schema");
    expect(error.code).toBe("INVALID");
    expect(error.issues.map((issue) => issue.path.join("."))).toEqual(["prompt", "steps"]);
  });

  it("refuses a body over its limit with 413, whether declared or streamed", async () => {
    const big = JSON.stringify({ prompt: "x".repeat(2000) });
    expect((await post(big)).status).toBe(413);
    const stream = new ReadableStream({
      start(controller) {
        controller.enqueue(new TextEncoder().encode(big));
        controller.close();
      },
    });
    const streamed = await generate.local(
      new Request("http://h/", { method: "POST", body: stream, duplex: "half" } as RequestInit),
    );
    expect(streamed.status).toBe(413);
    expect((await errorOf(streamed)).code).toBe("PAYLOAD_TOO_LARGE");
  });

  it("refuses another method with 405 and Allow, and another path with 404", async () => {
    const response = await generate.local(new Request("http://h/"));
    expect(response.status).toBe(405);
    expect(response.headers.get("allow")).toBe("POST");
    const other = await hello.local(new Request("http://h/other"));
    expect(other.status).toBe(404);
    expect((await errorOf(other)).message).toBe("no route /other: this endpoint answers at its URL's root");
    for (const path of ["/docs", "/openapi.json"]) {
      const undocumented = await hello.local(new Request(`http://h${path}`));
      expect(undocumented.status).toBe(404);
      expect((await errorOf(undocumented)).message).toContain("declare it with `docs: true` to serve /docs");
    }
  });

  it("answers HEAD as GET on a GET endpoint, and names HEAD in a GET endpoint's Allow", async () => {
    const head = await hello.local(new Request("http://h/?name=x", { method: "HEAD" }));
    expect(head.status).toBe(200);
    const refused = await hello.local(new Request("http://h/", { method: "POST", body: "{}" }));
    expect(refused.status).toBe(405);
    expect(refused.headers.get("allow")).toBe("GET, HEAD");
    expect((await generate.local(new Request("http://h/", { method: "HEAD" }))).status).toBe(405);
  });

  it("serves an OpenAPI 3.1 document generated from the schemas", async () => {
    const doc = (await (await generate.local(new Request("http://h/openapi.json"))).json()) as OpenApi;
    expect(doc).toMatchObject({ openapi: "3.1.0", info: { title: "generate" } });
    const operation = doc.paths["/"]!.post!;
    expect(operation.requestBody.content["application/json"]?.schema).toEqual({
      type: "object",
      properties: { prompt: { type: "string", minLength: 1 }, steps: { type: "integer", default: 20 } },
      required: ["prompt"],
    });
    expect(Object.keys(operation.responses)).toEqual(["200", "303", "400", "413", "422", "500"]);
  });

  it("serves a self-contained /docs page with the document in it", async () => {
    const response = await generate.local(new Request("http://h/docs"));
    expect(response.headers.get("content-type")).toBe("text/html; charset=utf-8");
    const html = await response.text();
    expect(html).toContain('"openapi":"3.1.0"');
    expect(html).not.toMatch(/<script[^>]+src=|<link[^>]+href=/);
  });
});
