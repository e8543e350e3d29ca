import { connect, type Socket } from "node:net";
import { pathToFileURL } from "node:url";
import type { RunnerMessage, WorkerToRunner } from "@skiff/protocol";
import { decodeMessage, encodeMessage, FrameReader, lengthPrefixed } from "@skiff/protocol/frame";
import { collectApp } from "../app.js";
import { decodeValue, encodeValue } from "../codec.js";
import { setContext } from "../context.js";
import { isNonRetriable } from "../errors.js";

export interface RunnerOptions {
  /** Unix socket the worker listens on. */
  socketPath: string;
  /** The user's bundle (ESM, inline source map). */
  bundlePath: string;
  functionName: string;
  maxInputs: number;
}

type Handler = (...args: unknown[]) => unknown;

/**
 * The program inside every container: loads the user's bundle, then pulls inputs from the worker over a
 * Unix socket, runs up to `maxInputs` at once, and sends each output back.
 */
export async function runRunner(options: RunnerOptions): Promise<void> {
  // Connecting (slow through gVisor's gofer) and loading the user's code overlap.
  const [socket, loaded] = await Promise.all([
    open(options.socketPath),
    loadHandler(options).then(
      (handler) => ({ handler }),
      (error: unknown) => ({ error }),
    ),
  ]);
  // Messages of one turn (the outputs of inputs that finished together, the next claim) go in one write:
  // every syscall is expensive under gVisor.
  let outgoing: Uint8Array[] = [];
  const send = (message: RunnerMessage) => {
    if (outgoing.length === 0) setImmediate(flushOutgoing);
    outgoing.push(lengthPrefixed(encodeMessage(message)));
  };
  const flushOutgoing = () => {
    const frames = outgoing;
    outgoing = [];
    if (frames.length > 0) socket.write(frames.length === 1 ? frames[0]! : Buffer.concat(frames));
  };
  const end = () => {
    flushOutgoing();
    socket.end();
  };
  if ("error" in loaded) {
    send({ t: "init-failed", error: encodeError(loaded.error) });
    end();
    process.exitCode = 1;
    return;
  }
  const { handler } = loaded;

  let active = 0;
  let asked = false;
  let askScheduled = false;
  let shuttingDown = false;
  // Slots freed in the same tick become one request: fast inputs must not cost a claim each.
  const askForMore = () => {
    if (askScheduled) return;
    askScheduled = true;
    setImmediate(() => {
      askScheduled = false;
      if (asked || shuttingDown || active >= options.maxInputs) return;
      asked = true;
      send({ t: "next", max: options.maxInputs - active });
    });
  };

  const runOne = async (input: { inputId: string; attempt: number; args: Uint8Array }) => {
    let message: RunnerMessage;
    try {
      const args = decodeValue<unknown[]>(input.args);
      const value = await handler(...args);
      message = {
        t: "output",
        inputId: input.inputId,
        attempt: input.attempt,
        status: "success",
        retryable: true,
        data: encodeValue(value),
      };
    } catch (error) {
      message = {
        t: "output",
        inputId: input.inputId,
        attempt: input.attempt,
        status: "failure",
        retryable: !isNonRetriable(error),
        data: encodeError(error),
      };
    }
    send(message);
    active--;
    if (shuttingDown && active === 0) end();
    askForMore();
  };

  const reader = new FrameReader();
  socket.on("data", (chunk: Buffer) => {
    for (const frame of reader.push(chunk)) {
      // The worker is trusted and validated its side; a shape check keeps zod out of every container.
      const message = decodeMessage(frame) as WorkerToRunner;
      if (message.t !== "shutdown" && !Array.isArray(message.inputs))
        throw new Error("skiff runner: malformed message");
      if (message.t === "shutdown") {
        shuttingDown = true;
        if (active === 0) end();
        continue;
      }
      asked = false;
      active += message.inputs.length;
      for (const input of message.inputs) void runOne(input);
      askForMore();
    }
  });
  socket.on("close", () => process.exit(0));
  send({ t: "ready" });
  askForMore();
}

async function loadHandler(options: RunnerOptions): Promise<Handler> {
  setContext({ v: 1, where: "container", functionIds: {} });
  // Source maps for the user's bundle only: the runner's own would cost startup time in every container.
  process.setSourceMapsEnabled(true);
  const exports = (await import(pathToFileURL(options.bundlePath).href)) as Record<string, unknown>;
  const fn = collectApp(exports, "the bundle").functions.get(options.functionName);
  if (!fn?.handler) throw new Error(`the bundle has no function "${options.functionName}": was it renamed? run again`);
  return fn.handler as Handler;
}

function encodeError(error: unknown): Uint8Array {
  explainMissingModule(error);
  try {
    return encodeValue(error instanceof Error ? error : new Error(`a non-Error value was thrown: ${String(error)}`));
  } catch {
    return encodeValue(new Error(String(error)));
  }
}

/** A package neither bundled nor in the image: say which, and how to put it in the image. */
function explainMissingModule(error: unknown): void {
  if (!(error instanceof Error) || (error as NodeJS.ErrnoException).code !== "ERR_MODULE_NOT_FOUND") return;
  const name = /Cannot find (?:package|module) '([^']+)'/.exec(error.message)?.[1];
  if (!name || name.startsWith("/")) return;
  const pkg = name.startsWith("@") ? name.split("/").slice(0, 2).join("/") : name.split("/")[0];
  error.message =
    `the package "${pkg}" is neither in the bundle nor in the function's image: ` +
    `install it in the image with \`image: Image.debianSlim().npmInstall("${pkg}")\`, ` +
    `or install it where you run skiff so that it is bundled (${error.message})`;
}

function open(path: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect(path);
    socket.once("connect", () => resolve(socket));
    socket.once("error", reject);
  });
}
