import { readFileSync } from "node:fs";
import { SourceMap } from "node:module";
import { pathToFileURL } from "node:url";

const INLINE_MAP = "//# sourceMappingURL=data:application/json;base64,";

/**
 * Formats stacks with the frames of the user's bundle mapped to its .ts sources, reading the bundle's inline
 * source map the first time a stack is formatted. Node's own source-map support parses that map when the
 * bundle is imported: ~20 ms of every cold start, for a map most containers never read.
 */
export function mapStacksOf(bundlePath: string): void {
  const bundleUrl = pathToFileURL(bundlePath).href;
  let map: SourceMap | null | undefined;
  const sourceMap = (): SourceMap | null => {
    if (map !== undefined) return map;
    try {
      const text = readFileSync(bundlePath, "utf8");
      const at = text.lastIndexOf(INLINE_MAP);
      map =
        at < 0 ? null : new SourceMap(JSON.parse(Buffer.from(text.slice(at + INLINE_MAP.length), "base64").toString()));
    } catch {
      map = null;
    }
    return map;
  };
  Error.prepareStackTrace = (error: Error, frames: NodeJS.CallSite[]) =>
    header(error) + frames.map((frame) => `\n    at ${formatFrame(frame, bundleUrl, sourceMap)}`).join("");
}

function header(error: Error): string {
  try {
    return Error.prototype.toString.call(error);
  } catch {
    return "Error";
  }
}

/** A frame as V8 prints it, with its place in the bundle replaced by the place in the user's source. */
function formatFrame(frame: NodeJS.CallSite, bundleUrl: string, sourceMap: () => SourceMap | null): string {
  const file = frame.getFileName();
  const line = frame.getLineNumber();
  const column = frame.getColumnNumber();
  if (file !== bundleUrl || line === null || column === null) return frame.toString();
  const entry = sourceMap()?.findEntry(line - 1, column - 1) as
    | { originalSource?: string; originalLine?: number; originalColumn?: number; name?: string }
    | undefined;
  if (!entry?.originalSource || entry.originalLine === undefined || entry.originalColumn === undefined) {
    return frame.toString();
  }
  const where = `${entry.originalSource}:${entry.originalLine + 1}:${entry.originalColumn + 1}`;
  const name = frame.getFunctionName() ?? (frame.isToplevel() ? null : "<anonymous>");
  const prefix = `${frame.isAsync() ? "async " : ""}${frame.isConstructor() ? "new " : ""}`;
  return name ? `${prefix}${name} (${where})` : `${prefix}${where}`;
}
