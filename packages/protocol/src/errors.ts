/** Every error code Skiff reports, across the API, the worker and the runner. */
export const ERROR_CODES = {
  BAD_REQUEST: "BAD_REQUEST",
  UNAUTHORIZED: "UNAUTHORIZED",
  FORBIDDEN: "FORBIDDEN",
  NOT_FOUND: "NOT_FOUND",
  METHOD_NOT_ALLOWED: "METHOD_NOT_ALLOWED",
  CONFLICT: "CONFLICT",
  PAYLOAD_TOO_LARGE: "PAYLOAD_TOO_LARGE",
  /** A request well formed, whose content does not match its schema (an endpoint's body or query). */
  INVALID: "INVALID",
  TIMEOUT: "TIMEOUT",
  CANCELLED: "CANCELLED",
  USER_ERROR: "USER_ERROR",
  INIT_FAILED: "INIT_FAILED",
  CONTAINER_CRASHED: "CONTAINER_CRASHED",
  OUT_OF_MEMORY: "OUT_OF_MEMORY",
  /** A store's quota (a workspace's volume bytes) would be exceeded; nothing was changed. */
  QUOTA_EXCEEDED: "QUOTA_EXCEEDED",
  UNAVAILABLE: "UNAVAILABLE",
  INTERNAL: "INTERNAL",
} as const;

/** The HTTP status for each code; a Record so a new code cannot be forgotten here. */
export const HTTP_STATUS: Record<keyof typeof ERROR_CODES, number> = {
  BAD_REQUEST: 400,
  UNAUTHORIZED: 401,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  METHOD_NOT_ALLOWED: 405,
  CONFLICT: 409,
  PAYLOAD_TOO_LARGE: 413,
  INVALID: 422,
  TIMEOUT: 504,
  CANCELLED: 499,
  USER_ERROR: 500,
  INIT_FAILED: 500,
  CONTAINER_CRASHED: 500,
  OUT_OF_MEMORY: 500,
  QUOTA_EXCEEDED: 507,
  UNAVAILABLE: 503,
  INTERNAL: 500,
};
