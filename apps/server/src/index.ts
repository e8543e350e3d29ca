export { ControlPlane } from "./engine/control-plane.js";
export { type RunningServer, type ServerOptions, startServer } from "./server.js";
