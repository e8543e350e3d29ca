import { groupBy, type LogLine, type Result } from "@skiff/protocol";
import type { FinishedInput } from "@skiff/store";

/** Something results and logs can be pushed to: a client WebSocket. */
export interface Subscriber {
  pushResults(callId: string, results: Result[]): void;
  pushLogs(lines: LogLine[]): void;
}

function add<K>(map: Map<K, Set<Subscriber>>, key: K, subscriber: Subscriber): void {
  const set = map.get(key) ?? new Set<Subscriber>();
  map.set(key, set);
  set.add(subscriber);
}

/** Routes finished inputs to the callers waiting on them, and container logs to their app's watchers. */
export class Hub {
  private readonly calls = new Map<string, Set<Subscriber>>();
  private readonly apps = new Map<string, Set<Subscriber>>();

  subscribeCall(callId: string, subscriber: Subscriber): void {
    add(this.calls, callId, subscriber);
  }

  subscribeLogs(appId: string, subscriber: Subscriber): void {
    add(this.apps, appId, subscriber);
  }

  unsubscribeCall(callId: string, subscriber: Subscriber): void {
    const set = this.calls.get(callId);
    set?.delete(subscriber);
    if (set?.size === 0) this.calls.delete(callId);
  }

  remove(subscriber: Subscriber): void {
    for (const map of [this.calls, this.apps]) {
      for (const [key, set] of map) {
        set.delete(subscriber);
        if (set.size === 0) map.delete(key);
      }
    }
  }

  publishFinished(finished: FinishedInput[]): void {
    for (const [callId, inputs] of groupBy(finished, (input) => input.callId)) {
      const results: Result[] = inputs.map((input) => ({
        idx: input.idx,
        status: input.status,
        data: input.data,
        ...(input.code ? { code: input.code } : {}),
      }));
      for (const subscriber of this.calls.get(callId) ?? []) subscriber.pushResults(callId, results);
    }
  }

  publishLogs(lines: LogLine[]): void {
    for (const [appId, appLines] of groupBy(lines, (line) => line.appId)) {
      for (const subscriber of this.apps.get(appId) ?? []) subscriber.pushLogs(appLines);
    }
  }
}
