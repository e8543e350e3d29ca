import { type JsonSchema, toJsonSchema } from "./json-schema.js";
import type { HttpMethod, Schema } from "./web-options.js";

/** What an endpoint's OpenAPI document describes. */
export interface OpenApiSource {
  method: HttpMethod;
  body?: Schema | undefined;
  query?: Schema | undefined;
  /** Long requests are answered 303 to their result URL (`redirectAfter` is not false). */
  redirects?: boolean | undefined;
}

const ERROR_SCHEMA: JsonSchema = {
  type: "object",
  properties: {
    error: {
      type: "object",
      properties: {
        code: { type: "string" },
        message: { type: "string" },
        requestId: { type: "string" },
        issues: { type: "array", items: {} },
      },
      required: ["code", "message"],
    },
  },
  required: ["error"],
};

/**
 * The OpenAPI 3.1 document of an endpoint: its one operation at `/` (relative to the document's own
 * URL, so it holds whatever URL the endpoint is served at), with the query's fields as parameters, the
 * JSON body's schema, and the error answers the platform gives.
 * @example
 * openApiDocument("generate", { method: "POST", body: z.object({ prompt: z.string() }) })
 */
export function openApiDocument(title: string, source: OpenApiSource): JsonSchema {
  const query = source.query ? toJsonSchema(source.query) : undefined;
  const required = new Set((query?.required as string[] | undefined) ?? []);
  const parameters = Object.entries((query?.properties as Record<string, JsonSchema> | undefined) ?? {}).map(
    ([name, schema]) => ({ name, in: "query", required: required.has(name), schema }),
  );
  const json = (schema: JsonSchema) => ({ "application/json": { schema } });
  const error = (description: string) => ({ description, content: json(ERROR_SCHEMA) });
  const operation = {
    operationId: title,
    ...(parameters.length > 0 ? { parameters } : {}),
    ...(source.body ? { requestBody: { required: true, content: json(toJsonSchema(source.body)) } } : {}),
    responses: {
      "200": { description: "the handler's value: JSON, or text" },
      ...(source.redirects === false
        ? {}
        : { "303": { description: "still running after redirectAfter: the answer will be at Location" } }),
      ...(source.body ? { "400": error("the body is not JSON"), "413": error("the body is over the limit") } : {}),
      ...(source.body || source.query ? { "422": error("the request does not match the schema") } : {}),
      "500": error("the handler failed"),
    },
  };
  return {
    openapi: "3.1.0",
    info: { title, version: "1" },
    servers: [{ url: "." }],
    paths: { "/": { [source.method.toLowerCase()]: operation } },
  };
}
