import { SkiffError } from "../errors.js";
import { SkiffFunction } from "../function.js";
import type { FunctionOptions } from "../function-spec.js";
import type { WebDeclaration } from "./web-options.js";

/** A handler of HTTP requests as the platform calls it: a Hono app's `fetch` is one. */
export type FetchHandler = (request: Request) => Response | Promise<Response>;

/**
 * A function that answers HTTP requests at `/w/ENV/APP/LABEL/...`: made by `app.web`, `app.endpoint` or
 * `app.webServer`, exported under its name. It is reached by its URL, not called: `local(request)` runs
 * its handler here (a test's shortcut), and `remote`, `spawn` and `map` throw.
 * @example
 * export const hello = app.endpoint({}, () => "hello");
 * const response = await hello.local(new Request("http://localhost/"));
 */
export class WebFunction extends SkiffFunction<[Request], Response> {
  constructor(
    appName: string,
    options: FunctionOptions,
    /** Its kind, label and the rest of its WebSpec. */
    readonly web: WebDeclaration,
    /** `app.web` and `app.endpoint`: the handler each request goes to. */
    readonly fetch: FetchHandler | undefined,
    /** `app.webServer`: starts the user's server on `web.port`. */
    readonly start?: () => unknown,
  ) {
    super(appName, options, fetch);
  }

  override async local(request: Request): Promise<Response> {
    if (!this.fetch) {
      throw new SkiffError("BAD_REQUEST", `${this.describe()} is a server on a port: request its URL instead`);
    }
    return this.fetch(request);
  }

  override remote(): never {
    throw this.notCallable("remote");
  }

  override spawn(): never {
    throw this.notCallable("spawn");
  }

  override map(): never {
    throw this.notCallable("map");
  }

  override starmap(): never {
    throw this.notCallable("starmap");
  }

  override forEach(): never {
    throw this.notCallable("forEach");
  }

  override withOptions(): never {
    throw new SkiffError("BAD_REQUEST", `${this.describe()} answers HTTP: it has no variants; declare another one`);
  }

  private describe(): string {
    return `web function "${this.name ?? "<unnamed>"}" of app "${this.appName}"`;
  }

  private notCallable(method: string): SkiffError {
    return new SkiffError(
      "BAD_REQUEST",
      `${this.describe()} answers HTTP requests, not calls: request its URL (/w/ENV/${this.appName}/LABEL/...; \`skiff serve\` and \`skiff deploy\` print it) instead of .${method}()`,
    );
  }
}
