import type { CallOptions } from "./call_options.ts";

/**
 * The shape `host.client<T>()` accepts: an interface whose members are methods
 * `(params, options?) => Promise<result>`, as `plugsconc plugins types <name>` prints one.
 */
export type PluginClientShape<T> = {
  [K in keyof T]: (params: never, options?: CallOptions) => Promise<unknown>;
};

/** How a client calls: `host.call(name, method, params, options)`. */
export type ClientCall = (
  method: string,
  params: unknown,
  options?: CallOptions,
) => Promise<unknown>;

/**
 * A client object whose every method calls the plugin: `client.speak(params, options)` is
 * `call("speak", params, options)`. Names that JavaScript itself looks up on objects (`then`,
 * so that `await` does not call the plugin; `toJSON`; `Object.prototype`'s; symbols) are not
 * methods: call those with `host.call`.
 */
export function makePluginClient<T>(call: ClientCall): T {
  const methods = new Map<string, (params?: unknown, options?: CallOptions) => Promise<unknown>>();
  return new Proxy(Object.create(null), {
    get(_target, prop) {
      if (
        typeof prop !== "string" || prop === "then" || prop === "toJSON" || prop in Object.prototype
      ) {
        return undefined;
      }
      let fn = methods.get(prop);
      if (fn === undefined) {
        fn = (params?: unknown, options?: CallOptions) => call(prop, params, options);
        methods.set(prop, fn);
      }
      return fn;
    },
  }) as T;
}
