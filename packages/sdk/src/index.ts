export type { Duration, Size } from "@skiff/protocol";
export { App, LocalEntrypoint } from "./app.js";
export { CloudBucketMount, type CloudBucketMountOptions } from "./bucket-mount.js";
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
export { clientFromEnvironment, closeSharedClient } from "./connect.js";
export { currentContainerId, getContext, type MapProgress, type SkiffContext } from "./context.js";
export { CallError, isNonRetriable, NonRetriableError, SkiffError } from "./errors.js";
export { type AutoscalerOptions, Function, type MapOptions, SkiffFunction } from "./function.js";
export { FunctionCall } from "./function-call.js";
export type { FunctionOptions, VariantOptions } from "./function-spec.js";
export { Image, type StepOptions } from "./image.js";
export { Cron, type CronSchedule, Period, type PeriodOptions, type PeriodSchedule, type Schedule } from "./schedule.js";
export { Secret } from "./secret.js";
export {
  Volume,
  type VolumeChangeResult,
  type VolumeData,
  type VolumeEntry,
  type VolumeOptions,
  type VolumeVersion,
} from "./volume.js";
export type { EndpointInput } from "./web/declare.js";
export { type StreamFormat, streamResponse } from "./web/stream-response.js";
export { type FetchHandler, WebFunction } from "./web/web-function.js";
export type { EndpointOptions, HttpMethod, Schema, WebOptions, WebServerOptions } from "./web/web-options.js";
export {
  type UpgradeWebSocketOptions,
  upgradeWebSocket,
  type WebSocketCloseEvent,
  type WebSocketLike,
  type WebSocketMessageEvent,
  type WebSocketUpgrade,
} from "./web/websocket.js";
