import { type GeneratorItem, groupBy, type LogLine, type Result } from "@skiff/protocol";
import type { FinishedInput } from "@skiff/store";
import { RecentLogs } from "./recent-logs.js";
import { addToIndex, removeFromIndex } from "./set-index.js";

/** Something results and logs can be pushed to: a client WebSocket. */
export interface Subscriber {
  pushResults(callId: string, results: Result[]): void;
  /** Values a generator call yielded (never replayed: a subscriber that was away misses them). */
  pushItems?(callId: string, items: GeneratorItem[]): void;
  pushLogs(lines: LogLine[]): void;
  /** The app is stopped and every line of its containers was pushed. */
  endLogs(appId: string): void;
}

/** A finished input as its caller receives it. */
export function toResult(input: FinishedInput): Result {
  return { idx: input.idx, status: input.status, data: input.data, ...(input.code ? { code: input.code } : {}) };
}

/** Routes finished inputs to the callers waiting on them, and container logs to their app's watchers. */
export class Hub {
  private readonly calls = new Map<string, Set<Subscriber>>();
  private readonly apps = new Map<string, Set<Subscriber>>();
  private readonly recentLogs = new RecentLogs();

  subscribeCall(callId: string, subscriber: Subscriber): void {
    addToIndex(this.calls, callId, subscriber);
  }

  /** `replay`: first sends the app's lines of the last minute (a watcher that reconnected drops those it had). */
  subscribeLogs(appId: string, subscriber: Subscriber, replay = false): void {
    addToIndex(this.apps, appId, subscriber);
    const recent = replay ? this.recentLogs.of(appId) : [];
    if (recent.length > 0) subscriber.pushLogs(recent);
  }

  unsubscribeCall(callId: string, subscriber: Subscriber): void {
    removeFromIndex(this.calls, callId, subscriber);
  }

  /** Forgets a subscriber; answers the calls it leaves without any. */
  remove(subscriber: Subscriber): string[] {
    const left: string[] = [];
    for (const map of [this.calls, this.apps]) {
      for (const [key, set] of map) {
        if (!set.delete(subscriber) || set.size > 0) continue;
        map.delete(key);
        if (map === this.calls) left.push(key);
      }
    }
    return left;
  }

  hasSubscribers(callId: string): boolean {
    return (this.calls.get(callId)?.size ?? 0) > 0;
  }

  publishFinished(finished: FinishedInput[]): void {
    for (const [callId, inputs] of groupBy(finished, (input) => input.callId)) {
      const results = inputs.map(toResult);
      for (const subscriber of this.calls.get(callId) ?? []) subscriber.pushResults(callId, results);
    }
  }

  /** Pushes a generator call's values to its subscribers, in order. */
  publishItems(callId: string, items: GeneratorItem[]): void {
    for (const subscriber of this.calls.get(callId) ?? []) subscriber.pushItems?.(callId, items);
  }

  /** Tells an app's watchers that it is stopped and they have all its lines. */
  endLogs(appId: string): void {
    for (const subscriber of this.apps.get(appId) ?? []) subscriber.endLogs(appId);
  }

  /** Pushes lines to their apps' watchers, but not lines already pushed (a worker resends what was not acknowledged). */
  publishLogs(lines: LogLine[]): void {
    for (const [appId, appLines] of groupBy(this.recentLogs.add(lines), (line) => line.appId)) {
      for (const subscriber of this.apps.get(appId) ?? []) subscriber.pushLogs(appLines);
    }
  }
}
