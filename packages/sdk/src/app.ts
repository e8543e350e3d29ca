import type { AppManifest } from "@skiff/protocol";
import { RESOURCE_NAME } from "@skiff/protocol/constants";
import { BRAND, kindOf } from "./brand.js";
import { type ClassOptions, type Cls, classShape, marksOf, SkiffClass } from "./cls.js";
import { SkiffFunction } from "./function.js";
import { checkOptionNames, type FunctionOptions, localSecrets, toFunctionSpec } from "./function-spec.js";
import { isAsyncGeneratorFunction } from "./generator.js";
import { declareEndpoint, declareWeb, declareWebServer, type EndpointInput } from "./web/declare.js";
import type { FetchHandler, WebFunction } from "./web/web-function.js";
import {
  type EndpointOptions,
  type Schema,
  toWebSpec,
  type WebDeclaration,
  type WebOptions,
  type WebServerOptions,
} from "./web/web-options.js";

/**
 * A local entrypoint: runs on your machine under `skiff run FILE::name -- --flag value`.
 * @example
 * export const main = app.localEntrypoint(async ({ n = 10 }: { n?: number }) => console.log(n));
 */
export class LocalEntrypoint<T extends Record<string, unknown> = Record<string, unknown>> {
  readonly [BRAND] = "entrypoint" as const;
  constructor(
    readonly appName: string,
    readonly run: (args: T) => unknown,
  ) {}
}

/**
 * A group of functions deployed and run together.
 * @example
 * export const app = new App("hello");
 * export const square = app.function({}, async (x: number) => x * x);
 */
export class App {
  readonly [BRAND] = "app" as const;
  readonly functions: SkiffFunction<never[], unknown>[] = [];
  readonly classes: SkiffClass<object>[] = [];

  constructor(readonly name: string) {
    if (!RESOURCE_NAME.test(name)) {
      throw new RangeError(`app name "${name}" is not valid: use letters, digits, '-' and '_' (at most 63)`);
    }
  }

  /** Declares a function that runs in containers. Export it: the export name becomes its name. */
  function<T, R>(
    options: FunctionOptions & { batched: NonNullable<FunctionOptions["batched"]> },
    handler: (items: T[]) => R[] | Promise<R[]>,
  ): SkiffFunction<[T], R>;
  function<A extends unknown[], R>(
    options: FunctionOptions,
    handler: (...args: A) => R | Promise<R>,
  ): SkiffFunction<A, Awaited<R>>;
  function<A extends unknown[], R>(handler: (...args: A) => R | Promise<R>): SkiffFunction<A, Awaited<R>>;
  function<A extends unknown[], R>(
    optionsOrHandler: FunctionOptions | ((...args: A) => R | Promise<R>),
    maybeHandler?: (...args: A) => R | Promise<R>,
  ): SkiffFunction<A, Awaited<R>> {
    const [options, handler] =
      typeof optionsOrHandler === "function" ? [{}, optionsOrHandler] : [optionsOrHandler, maybeHandler];
    if (typeof handler !== "function") {
      throw new TypeError(`app.function(options, handler) needs a handler function as its last argument`);
    }
    // Here, so that the error points at the user's line; the manifest checks again with the export name.
    checkOptionNames(options.name ? `function "${options.name}"` : "app.function(options)", options);
    if (isAsyncGeneratorFunction(handler) && (options.batched || options.schedule)) {
      throw new TypeError(
        options.batched
          ? "app.function: a batched handler cannot be an async generator (each caller gets one result): drop `batched`, or return a list"
          : "app.function: a scheduled function cannot be an async generator (nobody would take its values): drop `schedule`, or make it a plain async function",
      );
    }
    const fn = new SkiffFunction<A, Awaited<R>>(this.name, options, handler as (...args: A) => Promise<Awaited<R>>);
    this.functions.push(fn as unknown as SkiffFunction<never[], unknown>);
    return fn;
  }

  /**
   * Declares a class whose instances live in containers (see SkiffClass). Export it: the export name
   * becomes its name.
   */
  cls<C extends new () => object>(options: ClassOptions, ctor: C): Cls<InstanceType<C>>;
  cls<C extends new () => object>(ctor: C): Cls<InstanceType<C>>;
  cls<C extends new () => object>(optionsOrCtor: ClassOptions | C, maybeCtor?: C): Cls<InstanceType<C>> {
    const [options, ctor] = typeof optionsOrCtor === "function" ? [{}, optionsOrCtor] : [optionsOrCtor, maybeCtor];
    if (typeof ctor !== "function")
      throw new TypeError("app.cls(options, class { ... }) needs a class as its last argument");
    checkOptionNames(options.name ? `class "${options.name}"` : "app.cls(options)", options, "class");
    const cls = new SkiffClass<InstanceType<C>>(
      this.name,
      options,
      ctor as unknown as new () => InstanceType<C>,
      marksOf(ctor).methods,
    );
    this.classes.push(cls as unknown as SkiffClass<object>);
    return cls as Cls<InstanceType<C>>;
  }

  /**
   * Declares a function that answers HTTP requests at `/w/ENV/APP/LABEL/...` with any fetch handler
   * (`(request: Request) => Response`): a Hono app's `fetch` works as it is. The handler sees the path
   * after the label (`/w/main/app/site/a?b=1` as `/a?b=1`); responses stream as they are written.
   * @example
   * const hono = new Hono().get("/", (c) => c.text("home"));
   * export const site = app.web({ concurrent: { maxInputs: 100 } }, hono.fetch);
   */
  web(options: WebOptions, handler: FetchHandler): WebFunction;
  web(handler: FetchHandler): WebFunction;
  web(optionsOrHandler: WebOptions | FetchHandler, maybeHandler?: FetchHandler): WebFunction {
    const [options, handler] =
      typeof optionsOrHandler === "function" ? [{}, optionsOrHandler] : [optionsOrHandler, maybeHandler];
    return this.add(declareWeb(this.name, options, handler as FetchHandler));
  }

  /**
   * Declares a typed JSON endpoint: the query and JSON body are checked against zod schemas (422 with
   * the issues when they do not match) and handed to the handler merged into one object; what it returns
   * is the answer (JSON, a string as text, or a Response). `docs: true` serves `/docs` and `/openapi.json`.
   * @example
   * export const generate = app.endpoint(
   *   { docs: true, body: z.object({ prompt: z.string(), steps: z.number().int().default(20) }) },
   *   async ({ prompt, steps }) => ({ prompt, steps }),
   * );
   */
  endpoint<B extends Schema | undefined = undefined, Q extends Schema | undefined = undefined>(
    options: EndpointOptions<B, Q>,
    handler: (input: EndpointInput<B, Q>, request: Request) => unknown,
  ): WebFunction {
    return this.add(declareEndpoint(this.name, options, handler));
  }

  /**
   * Declares a server that your code starts on a port inside the container (any HTTP server, WebSockets
   * included): `start` launches it; the container takes requests once the port accepts connections.
   * @example
   * export const ui = app.webServer({ port: 8000, startupTimeout: "60s" }, () => {
   *   createServer((req, res) => res.end("hi")).listen(8000);
   * });
   */
  webServer(options: WebServerOptions, start: () => unknown): WebFunction {
    return this.add(declareWebServer(this.name, options, start));
  }

  private add(fn: WebFunction): WebFunction {
    this.functions.push(fn as unknown as SkiffFunction<never[], unknown>);
    return fn;
  }

  /** Declares code that runs locally and calls functions remotely; see LocalEntrypoint. */
  localEntrypoint<T extends Record<string, unknown>>(run: (args: T) => unknown): LocalEntrypoint<T> {
    return new LocalEntrypoint<T>(this.name, run);
  }
}

/** What a module defines: its app, functions named after their exports, and entrypoints. */
export interface CollectedApp {
  app: App;
  functions: Map<string, SkiffFunction<never[], unknown>>;
  classes: Map<string, SkiffClass<object>>;
  entrypoints: Map<string, LocalEntrypoint>;
}

/**
 * Finds the app in a module's exports and names each function after its export. Used by the CLI
 * (locally) and the runner (in the container), so both agree on names.
 */
export function collectApp(exports: Record<string, unknown>, file: string): CollectedApp {
  const apps = new Set<App>();
  const functions = new Map<string, SkiffFunction<never[], unknown>>();
  const classes = new Map<string, SkiffClass<object>>();
  const entrypoints = new Map<string, LocalEntrypoint>();
  for (const [key, value] of Object.entries(exports)) {
    const kind = kindOf(value);
    if (kind === "app") apps.add(value as App);
    if (kind === "function") {
      const fn = value as SkiffFunction<never[], unknown>;
      if (fn.isVariant) continue; // its function is the one the app runs
      fn.name ??= key;
      functions.set(fn.name, fn);
    }
    if (kind === "class") {
      const cls = value as SkiffClass<object>;
      cls.name ??= key;
      classes.set(cls.name, cls);
    }
    if (kind === "entrypoint") entrypoints.set(key, value as LocalEntrypoint);
  }
  if (apps.size === 0) {
    throw new RangeError(`${file} exports no App: add \`export const app = new App("name")\``);
  }
  if (apps.size > 1) throw new RangeError(`${file} exports ${apps.size} apps: export exactly one`);
  const app = [...apps][0]!;
  for (const fn of [...app.functions, ...app.classes]) {
    if (!fn.name) {
      throw new RangeError(
        `${file}: a function of app "${app.name}" is not exported: export it (\`export const f = app.function(...)\`) so it has a name`,
      );
    }
  }
  for (const name of classes.keys()) {
    if (functions.has(name)) throw new RangeError(`${file}: "${name}" names both a function and a class: rename one`);
  }
  return { app, functions, classes, entrypoints };
}

/** The values of the app's `fromObject`/`fromDotenv` secrets, by id, to send beside its manifest. */
export function localSecretsOf(collected: CollectedApp): Record<string, Record<string, string>> {
  const all = [...collected.functions.values(), ...collected.classes.values()];
  return Object.assign({}, ...all.map((fn) => localSecrets(fn.options)));
}

/** The manifest of a collected app: each function's spec (a web function's with its WebSpec; labels unique). */
export function manifestOf(collected: CollectedApp, nodeMajor: number): AppManifest {
  const labels = new Map<string, string>();
  return {
    name: collected.app.name,
    functions: [
      ...[...collected.functions.entries()].map(([name, fn]) => {
        const spec = toFunctionSpec(name, fn.options, nodeMajor);
        const { web } = fn as { web?: WebDeclaration };
        if (!web) return isAsyncGeneratorFunction(fn.handler) ? { ...spec, generator: true } : spec;
        const webSpec = toWebSpec(name, web);
        const other = labels.get(webSpec.label);
        if (other) {
          throw new RangeError(
            `functions "${other}" and "${name}" both answer at the label "${webSpec.label}": give one of them another \`label\``,
          );
        }
        labels.set(webSpec.label, name);
        return { ...spec, web: webSpec };
      }),
      ...[...collected.classes.entries()].map(([name, cls]) =>
        toFunctionSpec(name, cls.options, nodeMajor, classShape(cls.ctor!, `class "${name}"`)),
      ),
    ],
  };
}
