// A persistent app: `skiff deploy examples/deployed.ts`, then from any Node program:
//   const Model = await Cls.fromName("deployed", "Model");
//   await Model.with({ size: "large" }).predict.remote(3);
//   await (await Function.fromName("deployed", "embed")).remote("one text");
import { App, Cron, enter, exit, method, Period, parameter } from "skiff";

export const app = new App("deployed");

async function loadWeights(size: string): Promise<Map<string, number>> {
  await new Promise((resolve) => setTimeout(resolve, 200)); // stands for a real download
  return new Map([["w", size === "large" ? 10 : 1]]);
}

export const Model = app.cls(
  { minContainers: 1, maxContainers: 8, scaledownWindow: "2m", concurrent: { maxInputs: 8, targetInputs: 4 } },
  class {
    @parameter() size = "small"; // each distinct value gets its own pool of containers
    weights = new Map<string, number>();

    @enter() async load() {
      this.weights = await loadWeights(this.size);
      console.log(`loaded the ${this.size} weights`);
    }

    @method() async predict(x: number) {
      return (this.weights.get("w") ?? 0) * x;
    }

    @exit() async close() {
      console.log(`unloading the ${this.size} weights`);
    }
  },
);

// Callers send one text each; a container gets up to 32 at once.
export const embed = app.function({ batched: { maxBatchSize: 32, wait: "50ms" } }, async (texts: string[]) =>
  texts.map((text) => text.length),
);

export const nightly = app.function({ schedule: Cron("0 3 * * *", { timezone: "Europe/Paris" }) }, async () => {
  console.log("nightly report");
});

export const hourly = app.function({ schedule: Period({ hours: 1 }) }, async () => {
  console.log("hourly sync");
});
