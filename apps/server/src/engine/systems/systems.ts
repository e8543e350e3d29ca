import type { Scheduler } from "../scheduler.js";
import type { AppSystem } from "./apps.js";
import type { AttemptSystem } from "./attempts.js";
import type { BuildGrantSystem } from "./build-grants.js";
import type { CallSystem } from "./calls.js";
import type { ContainerSystem } from "./containers.js";
import type { PoolSystem } from "./pools.js";
import type { RecoverySystem } from "./recovery.js";
import type { RelaySystem } from "./relays.js";
import type { SecretSystem } from "./secrets.js";
import type { WebSystem } from "./web.js";

/**
 * The engine's systems by name: each one's constructor takes those it uses, as `Pick<Systems, ...>`.
 * `requestAutoscale` asks for an autoscaler pass soon.
 */
export interface Systems {
  pools: PoolSystem;
  secrets: SecretSystem;
  builds: BuildGrantSystem;
  attempts: AttemptSystem;
  calls: CallSystem;
  containers: ContainerSystem;
  web: WebSystem;
  apps: AppSystem;
  relays: RelaySystem;
  recovery: RecoverySystem;
  scheduler: Scheduler;
  requestAutoscale: () => void;
}
