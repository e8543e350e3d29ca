export type { Duration, Size } from "@skiff/protocol";
export { App, type CollectedApp, collectApp, LocalEntrypoint, localSecretsOf, manifestOf } from "./app.js";
export { Client, type ClientOptions, type ShellEvent } from "./client.js";
export {
  type ClassOptions,
  type ClassParams,
  type ClassVariantOptions,
  Cls,
  enter,
  exit,
  method,
  parameter,
  SkiffClass,
} from "./cls.js";
export { decodeValue, encodeValue } from "./codec.js";
export { clientFromEnvironment, closeSharedClient } from "./connect.js";
export { currentContainerId, getContext, type MapProgress, type SkiffContext, setContext } from "./context.js";
export { CallError, isNonRetriable, NonRetriableError, SkiffError } from "./errors.js";
export { type AutoscalerOptions, Function, type MapOptions, SkiffFunction } from "./function.js";
export { FunctionCall } from "./function-call.js";
export type { FunctionOptions, VariantOptions } from "./function-spec.js";
export { buildImage, Image, type StepOptions, uploadImageFiles } from "./image.js";
export { Cron, type CronSchedule, Period, type PeriodOptions, type PeriodSchedule, type Schedule } from "./schedule.js";
export { parseDotenv, Secret } from "./secret.js";
