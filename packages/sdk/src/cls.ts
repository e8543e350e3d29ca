import type { ClassShape, SpecOverrides } from "@skiff/protocol";
import { poolBaseId, poolId } from "@skiff/protocol/pool-id";
import { BRAND } from "./brand.js";
import { getContext } from "./context.js";
import { SkiffError } from "./errors.js";
import { type AutoscalerOptions, lookUp, SkiffFunction, updateAutoscaler } from "./function.js";
import { type FunctionOptions, toSpecOverrides, type VariantOptions } from "./function-spec.js";
import { isAsyncGeneratorFunction } from "./generator.js";

/** Options of `app.cls(options, class {...})`: those of a function, shared by all its methods. */
export type ClassOptions = Omit<FunctionOptions, "batched" | "schedule" | "name"> & { name?: string };

/** What `Cls.withOptions` may change: those of a function's variant but batches. */
export type ClassVariantOptions = Omit<VariantOptions, "batched">;

interface ClassMarks {
  parameters: string[];
  methods: string[];
  /** All `enter` hooks, in the order declared. */
  enter: string[];
  /** Those of them marked `snap: true`: they run before a memory snapshot is taken. */
  snapEnter: string[];
  exit: string[];
}

const MARKS = Symbol.for("skiff.class-marks");

// Standard decorators share a metadata object per class only where Symbol.metadata exists (esbuild's
// output makes its own; TypeScript's needs this).
(Symbol as unknown as { metadata?: symbol }).metadata ??= Symbol.for("Symbol.metadata");
const METADATA = (Symbol as unknown as { metadata: symbol }).metadata;

type Decorator = (target: unknown, context: unknown, descriptor?: unknown) => void;

interface MemberContext {
  kind: string;
  name: string | symbol;
  static: boolean;
  private: boolean;
  metadata?: object;
}

function isMemberContext(context: unknown): context is MemberContext {
  return typeof context === "object" && context !== null && "kind" in context && "name" in context;
}

/** A decorator recording that a member is of `kinds`; works as a standard and as a legacy decorator. */
function mark(kinds: keyof ClassMarks | (keyof ClassMarks)[], decorator: string): Decorator {
  const all = [kinds].flat();
  const member = all[0] === "parameters" ? "field" : "method";
  return (target, context) => {
    if (isMemberContext(context)) {
      if (context.kind !== member || context.static || context.private || typeof context.name !== "string") {
        throw new TypeError(`@${decorator}() goes on a public instance ${member}, not on ${String(context.name)}`);
      }
      if (!context.metadata) {
        throw new TypeError(`@${decorator}(): decorator metadata is missing; compile with esbuild or TypeScript 5.2+`);
      }
      for (const kind of all) record(context.metadata, kind, context.name);
    } else {
      // Legacy (experimentalDecorators): the prototype and the member's name.
      for (const kind of all) record((target as { constructor: object }).constructor, kind, String(context));
    }
  };
}

function record(holder: object, kind: keyof ClassMarks, name: string): void {
  const slot = holder as Record<symbol, ClassMarks | undefined>;
  if (!Object.hasOwn(holder, MARKS)) {
    // A subclass starts from its parent's marks without changing them.
    const inherited = slot[MARKS];
    slot[MARKS] = {
      parameters: [...(inherited?.parameters ?? [])],
      methods: [...(inherited?.methods ?? [])],
      enter: [...(inherited?.enter ?? [])],
      snapEnter: [...(inherited?.snapEnter ?? [])],
      exit: [...(inherited?.exit ?? [])],
    };
  }
  const marks = slot[MARKS]!;
  if (!marks[kind].includes(name)) marks[kind].push(name);
}

/** What the decorators of a class recorded. */
export function marksOf(ctor: object): ClassMarks {
  const metadata = (ctor as Record<symbol, Record<symbol, ClassMarks> | undefined>)[METADATA];
  return (
    metadata?.[MARKS] ??
    (ctor as Record<symbol, ClassMarks | undefined>)[MARKS] ?? {
      parameters: [],
      methods: [],
      enter: [],
      snapEnter: [],
      exit: [],
    }
  );
}

/** A field whose value picks the container pool: `@parameter() size = "small"` (string, number or boolean). */
export function parameter(): Decorator {
  return mark("parameters", "parameter");
}

/** A method callable remotely: `Model.predict.remote(x)`. */
export function method(): Decorator {
  return mark("methods", "method");
}

/**
 * Runs once per container before it takes inputs (loading a model); a throw fails the waiting inputs. With
 * `snap: true` (and `enableMemorySnapshot` on the class) it runs once, before the memory snapshot, and
 * containers restored from the snapshot start with what it did; `snap: false` hooks run in every container
 * (open connections there). Snap hooks run first, then the others, each in the order declared.
 */
export function enter(options: { snap?: boolean } = {}): Decorator {
  if (typeof options !== "object" || options === null) throw new TypeError("@enter() takes { snap?: boolean }");
  const unknown = Object.keys(options).filter((key) => key !== "snap");
  if (unknown.length > 0) throw new TypeError(`@enter() takes { snap?: boolean }, not ${unknown.join(", ")}`);
  if (options.snap !== undefined && typeof options.snap !== "boolean") {
    throw new TypeError("@enter({ snap }) takes true or false");
  }
  return mark(options.snap ? ["enter", "snapEnter"] : "enter", "enter");
}

/** Runs when the container shuts down, after its last input (30 s at most). */
export function exit(): Decorator {
  return mark("exit", "exit");
}

/**
 * The class's shape for the manifest. Parameter types come from their default values, so the class is
 * constructed once here (on the caller's machine, never in a container).
 */
export function classShape(ctor: new () => object, where: string): ClassShape {
  const marks = marksOf(ctor);
  if (marks.methods.length === 0) {
    throw new RangeError(`${where} has no @method(): mark the methods callers may call remotely`);
  }
  let probe: Record<string, unknown>;
  try {
    probe = new ctor() as Record<string, unknown>;
  } catch (error) {
    throw new RangeError(`${where}: its constructor threw (${(error as Error).message}); load things in @enter()`);
  }
  const parameters = marks.parameters.map((name) => {
    const type = typeof probe[name];
    if (type !== "string" && type !== "number" && type !== "boolean") {
      throw new RangeError(
        `${where}: @parameter() ${name} must default to a string, number or boolean (it is ${type === "undefined" ? "not set" : type})`,
      );
    }
    return { name, type };
  });
  const generators = marks.methods.filter((name) => isAsyncGeneratorFunction(probe[name]));
  return {
    methods: [...marks.methods],
    parameters,
    ...(generators.length > 0 ? { generators } : {}),
    ...(marks.snapEnter.length > 0 ? { snapEnter: [...marks.snapEnter] } : {}),
  };
}

type Method = (...args: never[]) => unknown;
type MethodKeys<I> = { [K in keyof I]: I[K] extends Method ? K : never }[keyof I];
type ParameterKeys<I> = { [K in keyof I]: I[K] extends string | number | boolean ? K : never }[keyof I];

/** A class's parameter values: each distinct set runs in its own pool of containers. */
export type ClassParams<I> = Partial<Pick<I, ParameterKeys<I>>>;

/** Remote handles of a class's methods, typed from the class. */
export type MethodHandles<I> = {
  readonly [K in MethodKeys<I>]: I[K] extends (...args: infer A) => infer R ? SkiffFunction<A, Awaited<R>> : never;
};

/** What `app.cls` returns: the class's methods as remote functions, and `with(params)` for other pools. */
export type Cls<I extends object> = SkiffClass<I> & MethodHandles<I>;

/**
 * A class whose instances live in containers: `enter` hooks run once per container, methods share the
 * pool, `@parameter()` values pick the pool.
 * @example
 * export const Model = app.cls({ memory: "2GiB" }, class {
 *   @parameter() size = "small";
 *   @enter() async load() { ... }
 *   @method() async predict(x: number) { ... }
 * });
 * await Model.with({ size: "large" }).predict.remote(3);
 */
export class SkiffClass<I extends object> {
  readonly [BRAND] = "class" as const;
  /** Set from the export name when the app is collected (or by `options.name`). */
  name: string | undefined;

  constructor(
    readonly appName: string,
    readonly options: ClassOptions,
    readonly ctor: (new () => I) | undefined,
    methods: string[],
    private readonly deployedId?: string,
    readonly params: Record<string, string | number | boolean> = {},
    /** Set by `withOptions`: the options this variant's pool overrides, as given and as spec fields. */
    private readonly variant?: { given: ClassVariantOptions; overrides: SpecOverrides },
  ) {
    this.name = options.name;
    for (const name of methods) {
      const handle = new SkiffFunction(appName, { name }, undefined, undefined, { cls: this, method: name });
      Object.defineProperty(this, name, { value: handle, enumerable: true });
    }
    // `skiff run` does not type-check: a method the class lacks is named as such, not "undefined".
    // biome-ignore lint/correctness/noConstructorReturn: the proxy is the instance, with the same prototype.
    return new Proxy(this, {
      get: (target, key, receiver) => {
        if (typeof key === "string" && !(key in target) && looksLikeMethod(key)) {
          const known = target.methodNames();
          throw new SkiffError(
            "BAD_REQUEST",
            `class "${target.name ?? "<unnamed>"}" has no method "${key}"; its methods are: ${known.join(", ") || "none"}`,
          );
        }
        return Reflect.get(target, key, receiver);
      },
    });
  }

  /** The same class in the pool of these parameter values (unset ones keep their defaults). */
  with(params: ClassParams<I>): Cls<I> {
    const merged = { ...this.params, ...(params as Record<string, string | number | boolean>) };
    const bound = new SkiffClass<I>(
      this.appName,
      this.options,
      this.ctor,
      this.methodNames(),
      this.deployedId,
      merged,
      this.variant,
    );
    bound.name = this.name;
    bound.generators = this.generators;
    return bound as Cls<I>;
  }

  /**
   * The same class with other options (memory, cpu, timeout, …), in a pool of its own; this one is
   * unchanged. Checked here as `app.cls` options are.
   * @example
   * const Big = Model.withOptions({ memory: "8GiB", cpu: 4 });
   * await Big.predict.remote(3);
   */
  withOptions(options: ClassVariantOptions): Cls<I> {
    const given = { ...this.variant?.given, ...options };
    const shape = { methods: this.methodNames(), parameters: [] };
    const overrides = toSpecOverrides(this.name ?? "<unnamed>", given, this.ctor ? this.options : undefined, shape);
    const variant = new SkiffClass<I>(
      this.appName,
      this.options,
      this.ctor,
      this.methodNames(),
      this.deployedId,
      this.params,
      { given, overrides },
    );
    variant.name = this.name;
    variant.generators = this.generators;
    return variant as Cls<I>;
  }

  /** The id of this class's pool for its parameter values (the server checks them). */
  async poolId(): Promise<string> {
    const base = this.deployedId ?? (this.name ? getContext()?.functionIds[this.name] : undefined);
    if (!base) {
      throw new SkiffError(
        "BAD_REQUEST",
        `class ${this.appName}.${this.name ?? "<unnamed>"} is not part of a running app: run this file with \`skiff run\`, or look it up with Cls.fromName(app, name)`,
      );
    }
    return poolId(base, this.params, this.variant?.overrides);
  }

  /** Changes the autoscaling of every pool of the class until the next deploy. */
  async updateAutoscaler(settings: AutoscalerOptions): Promise<void> {
    const id = await this.poolId();
    await updateAutoscaler(poolBaseId(id), settings);
  }

  /**
   * Whether a method is an async generator (called with `.remoteGen`): known from the class itself, or from
   * the deployed class's shape; undefined when neither says.
   */
  isGeneratorMethod(name: string): boolean | undefined {
    if (this.ctor) return isAsyncGeneratorFunction((this.ctor.prototype as Record<string, unknown>)[name]);
    return this.generators?.has(name);
  }

  /** The async generator methods of a class looked up by name (its shape says). */
  generators: Set<string> | undefined;

  private methodNames(): string[] {
    return Object.keys(this).filter((key) => this[key as keyof this] instanceof SkiffFunction);
  }
}

/** Names that callers, `await` and inspectors probe on any object are not method calls gone wrong. */
const PROBED = new Set([
  "then",
  "toJSON",
  "constructor",
  "inspect",
  "nodeType",
  "tagName",
  "asymmetricMatch",
  "length",
]);

function looksLikeMethod(key: string): boolean {
  return /^[A-Za-z][A-Za-z0-9_]*$/.test(key) && !PROBED.has(key);
}

/**
 * Deployed classes by name, from any Node program.
 * @example
 * const Model = await Cls.fromName<ModelClass>("ml", "Model");
 * await Model.with({ size: "large" }).predict.remote(3);
 */
export const Cls = {
  async fromName<I extends object = Record<string, Method>>(
    appName: string,
    name: string,
    options: { env?: string } = {},
  ): Promise<Cls<I>> {
    const found = await lookUp(appName, name, options.env);
    if (!found.cls) {
      throw new SkiffError(
        "BAD_REQUEST",
        `${appName}.${name} is a function: look it up with Function.fromName("${appName}", "${name}")`,
      );
    }
    const cls = new SkiffClass<I>(appName, { name }, undefined, found.cls.methods, found.functionId);
    cls.generators = new Set(found.cls.generators ?? []);
    return cls as Cls<I>;
  },
};
