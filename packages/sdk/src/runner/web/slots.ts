/**
 * At most `size` holders at once; the others wait in arrival order. The runner's web server takes one
 * per request, so that a container runs at most its `maxInputs` requests together.
 */
export class Slots {
  private used = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(private readonly size: number) {}

  /** Resolves once a slot is free, and takes it. */
  acquire(): Promise<void> | undefined {
    if (this.used < this.size) {
      this.used++;
      return undefined;
    }
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  /** Frees a slot: the longest waiter takes it. */
  release(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.used--;
  }
}
