import type { z } from "zod";
import { ApiError } from "../errors.js";

/** A JSON request body checked against `schema`; a bad one is a BAD_REQUEST naming the first problem. */
export async function parseBody<T extends z.ZodTypeAny>(request: Request, schema: T): Promise<z.infer<T>> {
  const body = await request.json().catch(() => {
    throw new ApiError("BAD_REQUEST", "the request body is not JSON");
  });
  const parsed = schema.safeParse(body);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    // A message that names its subject itself (see the manifest's) is shown as it is.
    const bare = issue.code === "custom" && issue.params?.bare === true;
    throw new ApiError("BAD_REQUEST", bare ? issue.message : `${issue.path.join(".") || "body"}: ${issue.message}`);
  }
  return parsed.data;
}
