/** Version of the worker and client WebSocket protocols; a worker with another version is refused. */
export const PROTOCOL_VERSION = 2; // 2: generator values (items, credit, gen-ack)
/** Attempts an input gets for infrastructure failures (worker died, container crashed, lease lost). */
export const INFRA_RETRIES = 8;
/** Payloads above this size travel through the blob store instead of inline. */
export const INLINE_PAYLOAD_LIMIT = 2 * 1024 * 1024;
/**
 * The largest WebSocket message a peer takes (client, worker and server alike). Payloads over
 * INLINE_PAYLOAD_LIMIT travel as blobs, so a message only grows by batching; senders that batch keep each
 * batch to BATCH_BYTES of payload.
 */
export const MAX_FRAME_BYTES = 64 * 1024 * 1024;
/** The most inline payload bytes a sender gathers into one message (a map's submits, a worker's outputs). */
export const BATCH_BYTES = 16 * 1024 * 1024;
/**
 * Values a generator may yield ahead of what its caller has taken (see `.remoteGen`): the runner pauses the
 * generator at this many unacknowledged values, or at GENERATOR_WINDOW_BYTES of them, so a slow caller holds
 * at most that much per call in flight (in the server, the worker and the caller's buffer together).
 */
export const GENERATOR_WINDOW = 64;
/** The inline bytes of unacknowledged values at which a generator pauses (values over 2 MiB are blobs). */
export const GENERATOR_WINDOW_BYTES = 8 * 1024 * 1024;
/** A lease not extended within this window is expired and its input requeued. */
export const LEASE_MS = 15_000;
/** How often workers extend the leases of the inputs they run. */
export const HEARTBEAT_MS = 3_000;
/** Completed calls are kept this long. */
export const RESULT_TTL_MS = 7 * 86_400_000;
/** An image's USER: a name (looked up in the image's /etc/passwd) or `uid[:gid]`. */
export const IMAGE_USER = /^[a-z_][a-z0-9_-]*$|^\d+(:\d+)?$/i;

/** An environment variable name: what an image's `env` and a secret's keys may set. */
export const ENV_VAR_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** The name of an app, environment or secret: letters, digits, '-' and '_', at most 63. */
export const RESOURCE_NAME = /^[a-z0-9][a-z0-9-_]{0,62}$/i;

/** A web label: lowercase letters, digits and '-', as it appears in URLs (`/w/ENV/APP/LABEL`). */
export const WEB_LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

/** The header that proves a web request to a worker's relay comes from the server (see the worker's hello). */
export const WEB_RELAY_SECRET_HEADER = "skiff-relay-secret";

/** The header naming a web request, in its logs and in the error answers a client gets. */
export const REQUEST_ID_HEADER = "x-skiff-request-id";

/** The file a restored container's socket directory has before it starts (see RunnerEnvironment.SKIFF_SNAPSHOT). */
export const RESTORED_MARK = "restored";
