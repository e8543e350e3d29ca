import { REQUEST_ID_HEADER } from "@skiff/protocol/constants";
import { describe, expect, it, vi } from "vitest";
import { endpointHandler } from "./endpoint.js";
import { isValueStream, streamResponse } from "./stream-response.js";

async function* values(list: unknown[], failAt?: number) {
  for (const [i, value] of list.entries()) {
    if (i === failAt) throw new Error("broken");
    yield value;
  }
}

const request = (accept?: string) =>
  new Request("http://x/", { headers: { [REQUEST_ID_HEADER]: "rq-1", ...(accept ? { accept } : {}) } });

describe("streamResponse", () => {
  it("writes server-sent events by default, NDJSON when the request accepts it", async () => {
    const sse = streamResponse(values([{ token: "a" }, "b", undefined]), request());
    expect(sse.headers.get("content-type")).toBe("text/event-stream; charset=utf-8");
    expect(sse.headers.get(REQUEST_ID_HEADER)).toBe("rq-1");
    expect(await sse.text()).toBe('data: {"token":"a"}\n\ndata: "b"\n\ndata: null\n\n');

    const ndjson = streamResponse(values([{ token: "a" }, 2]), request("application/x-ndjson"));
    expect(ndjson.headers.get("content-type")).toBe("application/x-ndjson");
    expect(await ndjson.text()).toBe('{"token":"a"}\n2\n');
  });

  it("ends a stream that throws with an error record naming the request, the stack to the logs only", async () => {
    const logged = vi.spyOn(console, "error").mockImplementation(() => {});
    const sse = await streamResponse(values(["a", "b"], 1), request()).text();
    expect(sse).toMatch(
      /^data: "a"\n\nevent: error\ndata: \{"error":\{"code":"INTERNAL",.*"requestId":"rq-1"\}\}\n\n$/,
    );
    expect(sse).not.toContain("broken");
    const ndjson = await streamResponse(values(["a"], 0), request("application/x-ndjson")).text();
    expect(JSON.parse(ndjson)).toMatchObject({ error: { code: "INTERNAL", requestId: "rq-1" } });
    expect(String(logged.mock.calls[0])).toContain("rq-1");
    logged.mockRestore();
  });

  it("pulls values only as the client reads, and stops the generator when the client goes away", async () => {
    let made = 0;
    let stopped = false;
    async function* counting() {
      try {
        for (;;) yield made++;
      } finally {
        stopped = true;
      }
    }
    const reader = streamResponse(counting(), request()).body!.getReader();
    await reader.read();
    await reader.read();
    expect(made).toBe(2);
    await reader.cancel();
    expect(stopped).toBe(true);
  });

  it("is what an endpoint answers when its handler returns an async iterable", async () => {
    const handler = endpointHandler({
      title: () => "t",
      method: "GET",
      docs: false,
      maxBodyBytes: 1024,
      handler: async function* () {
        yield 1;
        yield 2;
      },
    });
    const response = await handler(request("application/x-ndjson"));
    expect(await response.text()).toBe("1\n2\n");
    expect(isValueStream("text")).toBe(false);
    expect(isValueStream(new ReadableStream())).toBe(false);
  });
});
