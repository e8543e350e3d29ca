import type { ErrorCode } from "@skiff/protocol";
import { REQUEST_ID_HEADER } from "@skiff/protocol/constants";

/**
 * The JSON answer of a web request that failed, as the platform writes them all:
 * `{ error: { code, message, requestId?, ... } }`, with the request's id when it has one.
 * @example
 * errorResponse(request, 405, "METHOD_NOT_ALLOWED", "this endpoint answers POST")
 */
export function errorResponse(
  request: Request | undefined,
  status: number,
  code: ErrorCode,
  message: string,
  details: Record<string, unknown> = {},
  headers: Record<string, string> = {},
): Response {
  const requestId = request?.headers.get(REQUEST_ID_HEADER) ?? undefined;
  return Response.json(
    { error: { code, message, ...(requestId ? { requestId } : {}), ...details } },
    { status, headers: { ...headers, ...(requestId ? { [REQUEST_ID_HEADER]: requestId } : {}) } },
  );
}
