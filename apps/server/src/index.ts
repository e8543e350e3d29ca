export { ControlPlane } from "./engine/control-plane.js";
export type { ContainerView } from "./engine/systems/containers.js";
export { type RunningServer, type ServerOptions, startServer } from "./server.js";
