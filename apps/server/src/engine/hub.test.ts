import { describe, expect, it } from "vitest";
import { Hub, type Subscriber } from "./hub.js";

const collector = () => {
  const got: string[] = [];
  const subscriber: Subscriber = {
    pushResults: (callId, results) => got.push(`${callId}:${results.map((r) => r.idx).join(",")}`),
    pushLogs: () => {},
    endLogs: () => {},
  };
  return { got, subscriber };
};
const finished = (callId: string, idx: number) => ({
  inputId: `${callId}-${idx}`,
  callId,
  idx,
  status: "success" as const,
  code: undefined,
  data: { inline: new Uint8Array() },
});

describe("Hub", () => {
  it("pushes a call's results, grouped, until its subscriber unsubscribes", () => {
    const hub = new Hub();
    const { got, subscriber } = collector();
    hub.subscribeCall("c1", subscriber);
    hub.publishFinished([finished("c1", 0), finished("c2", 0), finished("c1", 1)]);
    hub.unsubscribeCall("c1", subscriber);
    hub.publishFinished([finished("c1", 2)]);
    expect(got).toEqual(["c1:0,1"]);
  });
});
