/** A web socket being served: `close` stops taking connections and resolves once those open are done. */
export interface WebServing {
  close(): Promise<void>;
}
