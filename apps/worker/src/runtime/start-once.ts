/**
 * Starts a container at most once per id: a second start of an id that is starting or running is refused,
 * and kill() can wait for a start in progress through `starting`.
 */
export async function startOnce<T>(
  starting: Map<string, Promise<T>>,
  isRunning: (id: string) => boolean,
  id: string,
  start: () => Promise<T>,
): Promise<T> {
  if (isRunning(id) || starting.has(id)) throw new Error(`Container ${id} is already running; pick a new id.`);
  const pending = start();
  starting.set(id, pending);
  try {
    return await pending;
  } finally {
    starting.delete(id);
  }
}
