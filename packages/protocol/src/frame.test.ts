import { describe, expect, it } from "vitest";
import { FrameReader, lengthPrefixed } from "./frame.js";

describe("FrameReader", () => {
  it("finds every frame however the stream is cut: headers split, frames across pieces, several in one", () => {
    const frames = [new Uint8Array(0), Uint8Array.from([1, 2, 3]), new Uint8Array(70_000).map((_, i) => i % 256)];
    const stream = Buffer.concat([...frames, ...frames].map((frame) => lengthPrefixed(frame)));
    for (const size of [1, 2, 3, 5, 4096, 65_536, stream.length]) {
      const reader = new FrameReader();
      const out: Uint8Array[] = [];
      for (let at = 0; at < stream.length; at += size) out.push(...reader.push(stream.subarray(at, at + size)));
      expect(out.map((frame) => Buffer.from(frame).toString("hex"))).toEqual(
        [...frames, ...frames].map((frame) => Buffer.from(frame).toString("hex")),
      );
    }
  });

  it("keeps a large frame in its pieces until it is whole", () => {
    const frame = lengthPrefixed(new Uint8Array(8 * 1024 * 1024).fill(7));
    const reader = new FrameReader();
    let found: Uint8Array[] = [];
    for (let at = 0; at < frame.length; at += 16_384)
      found = found.concat(reader.push(frame.subarray(at, at + 16_384)));
    expect(found).toHaveLength(1);
    expect(found[0]!.length).toBe(8 * 1024 * 1024);
    expect(found[0]!.every((byte) => byte === 7)).toBe(true);
  });
});
