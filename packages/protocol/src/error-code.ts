import { z } from "zod";
import { ERROR_CODES } from "./errors.js";

export const ErrorCode = z.nativeEnum(ERROR_CODES);
export type ErrorCode = z.infer<typeof ErrorCode>;
