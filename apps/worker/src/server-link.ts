import {
  type AttemptRef,
  batchesOf,
  type Capacity,
  HEARTBEAT_MS,
  inlineBytes,
  type Link,
  type LogLine,
  MAX_FRAME_BYTES,
  PROTOCOL_VERSION,
  ServerToWorker,
  socketLink,
  type WorkerItem,
  type WorkerMessage,
  type WorkerOutput,
} from "@skiff/protocol";
import type { Logger } from "pino";
import WebSocket from "ws";
import { LogShipper } from "./log-shipper.js";
import type { RuntimeName } from "./runtime/types.js";
import type { WebRelayAddress } from "./web-relay.js";

/** One connection to the server; the link makes a new one whenever it drops. */
export type ServerConnection = Link<WorkerMessage, ServerToWorker>;

/** Who this worker is, as its hello tells the server. */
export interface WorkerIdentity {
  workerId: string;
  name: string;
  runtime: RuntimeName;
  capacity: Capacity;
  /** Where the server sends web requests for this worker's containers (see WebRelay). */
  webRelay?: WebRelayAddress;
}

/** A container the link reports: in a hello (it still runs) and in heartbeats (the inputs it holds). */
export interface HeldContainer {
  readonly id: string;
  inFlightRefs(): AttemptRef[];
}

/** What the link connects to and whom it tells. */
export interface ServerLinkOptions {
  serverUrl: string;
  token?: string;
  /** Connects to a server in this process instead of over a WebSocket to `serverUrl`. */
  connect?: () => ServerConnection;
  log: Logger;
  /** Who this worker is, for the hello on each connection. */
  identity(): WorkerIdentity;
  /** The containers this worker runs now. */
  containers(): Iterable<HeldContainer>;
  /** A server message the link does not handle itself (all but the welcome and the acknowledgements). */
  onMessage(message: ServerToWorker): void;
  /** The server welcomed a new connection: claims sent on the old one are void and go again. */
  onWelcome(): void;
}

/**
 * Container log lines kept until the server has them: enough for a chatty container (lines come faster than
 * they are acknowledged) and a server restart, bounded so a worker's memory is too.
 */
const MAX_BUFFERED_LOG_LINES = 200_000;
const MAX_BUFFERED_LOG_CHARS = 32 * 1024 * 1024;

/**
 * The worker's link to the server, across connections: it reconnects, queues messages in order while
 * disconnected, numbers output batches and keeps them until the server has recorded them, ships
 * container logs (LogShipper), and heartbeats the leases of running inputs. After a reconnect it
 * re-sends what was not acknowledged.
 */
export class ServerLink {
  private connection: ServerConnection | undefined;
  private outputs: WorkerOutput[] = [];
  /** Generator values to relay: they go before outputs, since an attempt's output follows its values. */
  private items: WorkerItem[] = [];
  /** Output batches sent but not yet recorded by the server, by seq: a server that dies loses them. */
  private readonly unrecorded = new Map<number, WorkerOutput[]>();
  private outputSeq = 1;
  private readonly logs = new LogShipper(MAX_BUFFERED_LOG_LINES, MAX_BUFFERED_LOG_CHARS);
  private outbox: WorkerMessage[] = [];
  private flushScheduled = false;
  private stopped = false;
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private connectedOnce: (() => void) | undefined;

  constructor(private readonly options: ServerLinkOptions) {}

  /** Starts heartbeats and connects; resolves once the server has welcomed this worker. */
  async start(): Promise<void> {
    this.heartbeatTimer = setInterval(() => this.heartbeat(), HEARTBEAT_MS);
    this.heartbeatTimer.unref();
    await new Promise<void>((resolve) => {
      this.connectedOnce = resolve;
      this.connect();
    });
  }

  /**
   * Stops heartbeats and reconnects: the worker is going away. Messages still go out on the open
   * connection until close().
   */
  shutdown(): void {
    this.stopped = true;
    clearInterval(this.heartbeatTimer);
  }

  /** Sends what is queued and closes the connection. */
  close(): void {
    this.shutdown();
    this.flush();
    this.connection?.close();
  }

  /** Messages wait in order while disconnected; outputs and logs are batched per tick. */
  send(message: WorkerMessage): void {
    this.outbox.push(message);
    this.scheduleFlush();
  }

  /** Queues an output; it goes in the next numbered batch, kept until the server has recorded it. */
  queueOutput(output: WorkerOutput): void {
    this.outputs.push(output);
    this.scheduleFlush();
  }

  /**
   * Queues a value a generator yielded; it goes out before the outputs queued with it. Not kept once sent:
   * the server counts them, and a generator whose values did not all arrive fails rather than ends short.
   */
  queueItem(item: WorkerItem): void {
    this.items.push(item);
    this.scheduleFlush();
  }

  /** Queues a container's log line (see LogShipper). */
  queueLog(line: LogLine): void {
    this.logs.push(line);
    this.scheduleFlush();
  }

  /** Forgets a container's line numbers, once it is gone and its last lines are out. */
  forgetLogs(containerId: string): void {
    this.logs.forget(containerId);
  }

  private connect(): void {
    if (this.stopped) return;
    if (this.options.connect) {
      this.attach(this.options.connect());
      return;
    }
    const url = new URL("/v1/worker", this.options.serverUrl);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    const socket = new WebSocket(url, {
      perMessageDeflate: false,
      maxPayload: MAX_FRAME_BYTES,
      ...(this.options.token ? { headers: { authorization: `Bearer ${this.options.token}` } } : {}),
    });
    socket.binaryType = "nodebuffer";
    let opened = false;
    socket.on("open", () => {
      opened = true;
      this.attach(
        socketLink(socket, (data) => {
          const parsed = ServerToWorker.safeParse(data);
          if (parsed.success) return parsed.data;
          this.options.log.warn({ issues: parsed.error.issues.slice(0, 3) }, "bad message from server");
          return undefined;
        }),
      );
    });
    socket.on("close", () => {
      if (!opened) this.reconnectLater();
    });
    socket.on("error", (error) => this.options.log.debug({ err: error }, "server connection error"));
  }

  private reconnectLater(): void {
    if (!this.stopped) setTimeout(() => this.connect(), 500).unref();
  }

  /** Says hello on a new connection; the server's welcome makes it the one messages go to. */
  private attach(connection: ServerConnection): void {
    connection.onMessage((message) => this.onServer(connection, message));
    connection.onClose(() => {
      if (this.connection === connection) this.connection = undefined;
      this.reconnectLater();
    });
    const containers = [...this.options.containers()];
    connection.send({
      t: "hello",
      v: PROTOCOL_VERSION,
      ...this.options.identity(),
      containers: containers.map((container) => container.id),
      held: [
        ...containers.flatMap((container) =>
          container.inFlightRefs().map((ref) => ({ ...ref, containerId: container.id })),
        ),
        ...[...this.unrecorded.values(), this.outputs].flat().map((o) => ({ inputId: o.inputId, attempt: o.attempt })),
      ],
    });
  }

  private onServer(connection: ServerConnection, message: ServerToWorker): void {
    switch (message.t) {
      case "welcome":
        this.connection = connection;
        // Claims queued for the old connection are void; each session re-sends its own (onWelcome).
        this.outbox = this.outbox.filter((m) => m.t !== "claim");
        // Logs first, as in flush: a function's lines should reach its caller before its result does.
        for (const batch of this.logs.unacknowledgedBatches()) connection.send({ t: "logs", ...batch });
        for (const [seq, outputs] of this.unrecorded) connection.send({ t: "outputs", seq, outputs });
        this.warnDroppedLogs();
        this.options.log.info(
          { server: this.options.serverUrl, runtime: this.options.identity().runtime },
          "joined the server",
        );
        this.options.onWelcome();
        this.scheduleFlush();
        this.connectedOnce?.();
        this.connectedOnce = undefined;
        return;
      case "outputs-recorded":
        for (const seq of this.unrecorded.keys()) if (seq <= message.seq) this.unrecorded.delete(seq);
        return;
      case "logs-recorded":
        this.logs.acknowledged(message.seq);
        return;
      default:
        this.options.onMessage(message);
    }
  }

  /** Says how many log lines were lost while the server was away too long to keep them all. */
  private warnDroppedLogs(): void {
    const dropped = this.logs.takeDropped();
    if (dropped > 0)
      this.options.log.warn(
        { dropped, keptLines: MAX_BUFFERED_LOG_LINES, keptChars: MAX_BUFFERED_LOG_CHARS },
        "container log lines were dropped: more were waiting for the server than the worker keeps",
      );
  }

  private heartbeat(): void {
    const inputs = [...this.options.containers()].flatMap((container) => container.inFlightRefs());
    if (inputs.length > 0) this.send({ t: "heartbeat", inputs });
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => {
      this.flushScheduled = false;
      this.flush();
    });
  }

  private flush(): void {
    const connection = this.connection;
    if (!connection?.open) return;
    // Logs first: a function's output lines should reach its caller before its result does.
    for (const batch of this.logs.take()) connection.send({ t: "logs", ...batch });
    // A generator's values before its output (its count of them).
    for (const items of batchesOf(this.items, (item) => inlineBytes(item.data))) connection.send({ t: "items", items });
    this.items = [];
    // Outputs before the outbox: a claim sent after an output must not be answered before it is recorded.
    // Each message keeps to BATCH_BYTES of inline results, well below what a WebSocket message may hold.
    for (const outputs of batchesOf(this.outputs, (output) => inlineBytes(output.data))) {
      const seq = this.outputSeq++;
      this.unrecorded.set(seq, outputs);
      connection.send({ t: "outputs", seq, outputs });
    }
    this.outputs = [];
    for (const message of this.outbox) connection.send(message);
    this.outbox = [];
  }
}
