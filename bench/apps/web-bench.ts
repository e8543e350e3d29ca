import { App } from "skiff";
import { helloHono } from "./hello-hono.js";

/** The app `bench/run.ts` deploys for the web rows (`--only web`). */
export const app = new App("skiff-bench-web");

/** One warm container taking up to 100 requests at once: the latency and throughput target. */
export const warm = app.web({ minContainers: 1, maxContainers: 1, concurrent: { maxInputs: 100 } }, helloHono.fetch);

/** No container until requests come; up to 10 containers of 100 requests each: the 1,000-connection target. */
export const cold = app.web({ maxContainers: 10, concurrent: { maxInputs: 100 } }, helloHono.fetch);
