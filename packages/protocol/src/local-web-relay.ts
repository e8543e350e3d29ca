/**
 * A worker's web relay as a server in the same process reaches it (`skiff up`): instead of an HTTP request
 * to the relay's URL, the gateway connects to the container's web socket itself, saving a hop.
 */
export interface LocalWebRelay {
  /** The relay's URL, as the worker's hello gives it: which worker this is. */
  url: string;
  /**
   * The host path of a container's web socket, with the request counted as the container's activity until
   * `done`; undefined when it takes no requests now (not ready, stopping, gone). `accepting` says whether it
   * still takes requests: one that stopped closes its idle connections, maybe one a request just went out on.
   */
  open(containerId: string): { socketPath: string; done(): void; accepting(): boolean } | undefined;
  /**
   * Calls `listener` when a container stops taking requests or ends: connections kept alive to it should go,
   * so that its server can close.
   */
  onStopping(listener: (containerId: string) => void): void;
}
