import { REQUEST_ID_HEADER } from "@skiff/protocol/constants";

/** How a stream of values is written: server-sent events (`data: JSON`), or one JSON value per line. */
export type StreamFormat = "sse" | "ndjson";

/** The format a request asks for: NDJSON when its `Accept` names `application/x-ndjson`, else server-sent events. */
export function streamFormatOf(request: Request): StreamFormat {
  return /application\/x-ndjson/i.test(request.headers.get("accept") ?? "") ? "ndjson" : "sse";
}

/** Whether a handler's value is a stream of values to send as they come (an async generator or iterable). */
export function isValueStream(value: unknown): value is AsyncIterable<unknown> {
  return (
    typeof value === "object" &&
    value !== null &&
    !(value instanceof ReadableStream) &&
    typeof (value as { [Symbol.asyncIterator]?: unknown })[Symbol.asyncIterator] === "function"
  );
}

/**
 * A Response that sends each value of `values` as JSON the moment it comes: as server-sent events
 * (`data: {"word":"a"}` and a blank line; `text/event-stream`) or as NDJSON (one value per line;
 * `application/x-ndjson`). Values are pulled only as the client reads, so a slow client slows the
 * generator (through `.remoteGen`, the remote one too); a client that goes away stops it. A throw ends
 * the stream with a last error record (`event: error` in SSE), `{ "error": { code, message, requestId } }`,
 * and the stack goes to the app's logs, never to the client.
 * @example
 * export const site = app.web(async (request) => streamResponse(Model.generate.remoteGen("a cat"), request));
 */
export function streamResponse(values: AsyncIterable<unknown>, request?: Request, format?: StreamFormat): Response {
  const as = format ?? (request ? streamFormatOf(request) : "sse");
  const requestId = request?.headers.get(REQUEST_ID_HEADER) ?? undefined;
  const encoder = new TextEncoder();
  const record = (value: unknown, event?: string) => {
    const json = JSON.stringify(value === undefined ? null : value);
    return encoder.encode(as === "ndjson" ? `${json}\n` : `${event ? `event: ${event}\n` : ""}data: ${json}\n\n`);
  };
  const iterator = values[Symbol.asyncIterator]();
  const body = new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        try {
          const step = await iterator.next();
          if (step.done) controller.close();
          else controller.enqueue(record(step.value));
        } catch (error) {
          console.error(`skiff: request ${requestId ?? "(no id)"}: the response's stream of values threw:`, error);
          const message = "the handler's stream of values failed; its stack is in the app's logs";
          controller.enqueue(
            record({ error: { code: "INTERNAL", message, ...(requestId ? { requestId } : {}) } }, "error"),
          );
          controller.close();
        }
      },
      async cancel() {
        // The client went away: stop the generator (a `.remoteGen` cancels its remote call).
        await iterator.return?.();
      },
    },
    { highWaterMark: 0 },
  );
  const headers: Record<string, string> = {
    "content-type": as === "ndjson" ? "application/x-ndjson" : "text/event-stream; charset=utf-8",
    "cache-control": "no-cache",
    ...(requestId ? { [REQUEST_ID_HEADER]: requestId } : {}),
  };
  return new Response(body, { headers });
}
