import { type FSWatcher, watch } from "node:fs";
import { basename, dirname } from "node:path";

/**
 * Watches some files and calls `changed` once changes stop for `debounceMs`. It watches their directories
 * rather than the files, so a file an editor saves by writing a new one and renaming it over the old (vim,
 * JetBrains) is still seen; `watch` again with the new list after a rebuild.
 */
export class FileWatch {
  private watchers: FSWatcher[] = [];
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly changed: () => void,
    private readonly debounceMs = 100,
  ) {}

  /** Watches exactly `files` from now on (absolute paths). */
  watch(files: string[]): void {
    this.closeWatchers();
    const byDir = new Map<string, Set<string>>();
    for (const file of files) {
      const names = byDir.get(dirname(file)) ?? new Set<string>();
      names.add(basename(file));
      byDir.set(dirname(file), names);
    }
    for (const [dir, names] of byDir) {
      try {
        const watcher = watch(dir, (_event, name) => {
          if (name === null || names.has(name.toString())) this.poke();
        });
        // A directory removed under us: nothing more to see there.
        watcher.on("error", () => watcher.close());
        this.watchers.push(watcher);
      } catch {
        // A directory that is gone already holds no file to watch.
      }
    }
  }

  close(): void {
    this.closeWatchers();
    clearTimeout(this.timer);
  }

  private poke(): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(this.changed, this.debounceMs);
  }

  private closeWatchers(): void {
    for (const watcher of this.watchers) watcher.close();
    this.watchers = [];
  }
}
