import { GENERATOR_WINDOW, GENERATOR_WINDOW_BYTES } from "@skiff/protocol/constants";

/**
 * How far a generator in this container is ahead of its caller: the values it sent that the caller has not
 * taken yet, by count and inline bytes. Full at GENERATOR_WINDOW values or GENERATOR_WINDOW_BYTES; the
 * generator then waits at its `yield` until the caller's credit comes.
 */
export class GeneratorWindow {
  /** Values sent. */
  private sent = 0;
  /** Values the caller took (its credit). */
  private taken = 0;
  /** Inline sizes of the values sent and not taken, from value `taken` on, and their sum. */
  private readonly sizes: number[] = [];
  private bytes = 0;

  constructor(
    private readonly maxValues = GENERATOR_WINDOW,
    private readonly maxBytes = GENERATOR_WINDOW_BYTES,
  ) {}

  /** A value of `size` inline bytes went out (0 for a blob). */
  add(size: number): void {
    this.sent++;
    this.sizes.push(size);
    this.bytes += size;
  }

  /** The caller took `consumed` values in all (credits may come out of order: the largest counts). */
  credit(consumed: number): void {
    const taken = Math.min(Math.max(this.taken, consumed), this.sent);
    for (; this.taken < taken; this.taken++) this.bytes -= this.sizes.shift()!;
  }

  get full(): boolean {
    return this.sent - this.taken >= this.maxValues || this.bytes >= this.maxBytes;
  }
}
