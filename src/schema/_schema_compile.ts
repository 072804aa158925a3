/** Compiles a checked schema into a validator made of closures. @module */
import {
  clip,
  codePoints,
  deepEqual,
  formatValuePath,
  hasType,
  isMultiple,
  isObject,
  LINEAR_REGEXP,
  LINEAR_REGEXP_FLAG,
  preview,
  refName,
  SCHEMA_LIMITS,
  typeOf,
} from "./_schema_util.ts";

/** A failed check: where (built on the way out) and why. */
export interface Failure {
  /** Value path, innermost key last (built on the way out). */
  path: (string | number)[];
  message: string;
}

/** One compiled check. */
export type Check = (value: unknown) => Failure | undefined;

/** What compiling one schema shares. */
export interface CompileContext {
  readonly redact: boolean;
  /** Patterns only with V8's linear-time engine (else a RangeError at compile time). */
  readonly linearPatterns: boolean;
  readonly defs: Record<string, unknown>;
  readonly compiled: Map<string, Check>;
  refDepth: number;
  /** Subschema evaluations left for the value being checked. */
  stepsLeft: number;
  /** Characters string checks may still read for the value being checked. */
  charsLeft: number;
  /**
   * What each check said of each object or array of the value being checked (new for each
   * value): `anyOf` branches and `$ref`s that look at the same part again get the answer at
   * once, so a recursive schema costs what the value's size does, not 2^depth.
   */
  memo: WeakMap<object, Map<Check, Failure | undefined>>;
}

/**
 * Thrown when a value takes more evaluations than its budget, or nests deeper than the `$ref`
 * limit (its message then); caught by the validator, which refuses the whole value.
 */
export class TooComplex extends Error {}

function failure(message: string): Failure {
  return { path: [], message };
}

/** Compiles one (sub)schema. */
export function compileNode(s: unknown, ctx: CompileContext): Check {
  if (s === true) return () => undefined;
  if (s === false) return () => failure("no value is allowed here (the schema is false)");
  const o = s as Record<string, unknown>;
  const checks: Check[] = [];
  const show = (v: unknown) => ctx.redact ? typeOf(v) : preview(v);

  if (o.$ref !== undefined) {
    const name = refName(o.$ref)!;
    let target: Check | undefined;
    checks.push((v) => {
      // Resolved on first use: definitions may refer to each other (and to themselves).
      target ??= ctx.compiled.get(name) ?? compileDef(name, ctx);
      if (++ctx.refDepth > SCHEMA_LIMITS.maxRefDepth) {
        ctx.refDepth--;
        // The whole value is refused: as a failure, `not` or `oneOf` would turn it into a match
        // (and the memo would keep an answer that depends on how the part was reached).
        throw new TooComplex(
          `nested deeper than ${SCHEMA_LIMITS.maxRefDepth} $ref levels, the most checked`,
        );
      }
      try {
        return target(v);
      } finally {
        ctx.refDepth--;
      }
    });
  }
  if (o.type !== undefined) {
    const names = Array.isArray(o.type) ? o.type as string[] : [o.type as string];
    const expected = names.join(" or ");
    checks.push((v) =>
      names.some((n) => hasType(v, n)) ? undefined : failure(`expected ${expected}, got ${show(v)}`)
    );
  }
  if (o.enum !== undefined) {
    const values = o.enum as unknown[];
    const simple = new Set(values.filter((x) => x === null || typeof x !== "object"));
    const complex = values.filter((x) => x !== null && typeof x === "object");
    const list = clip(values.map((x) => preview(x)).join(", "), 120);
    checks.push((v) =>
      simple.has(v) || complex.some((x) => deepEqual(x, v))
        ? undefined
        : failure(`expected one of ${list}, got ${show(v)}`)
    );
  }
  if (Object.hasOwn(o, "const")) {
    const c = o.const;
    checks.push((v) =>
      deepEqual(c, v) ? undefined : failure(`expected ${preview(c)}, got ${show(v)}`)
    );
  }
  compileObject(o, ctx, checks);
  compileArray(o, ctx, checks);
  compileString(o, ctx, show, checks);
  compileNumber(o, show, checks);
  compileCombinators(o, ctx, checks);

  if (checks.length === 0) return () => undefined;
  const run = (v: unknown) => {
    for (const c of checks) {
      const f = c(v);
      if (f !== undefined) return f;
    }
    return undefined;
  };
  const self: Check = (v) => {
    if (--ctx.stepsLeft < 0) throw new TooComplex();
    if (v === null || typeof v !== "object") return run(v);
    let seen = ctx.memo.get(v);
    if (seen === undefined) ctx.memo.set(v, seen = new Map());
    // Copies: the callers add their keys to a failure's path on the way out.
    if (seen.has(self)) return copy(seen.get(self));
    const f = run(v);
    seen.set(self, copy(f));
    return f;
  };
  return self;
}

function copy(f: Failure | undefined): Failure | undefined {
  return f === undefined ? undefined : { path: [...f.path], message: f.message };
}

function compileDef(name: string, ctx: CompileContext): Check {
  // No recursion here: a `$ref` inside resolves on its first use, so definitions may refer to
  // each other (and to themselves).
  const check = compileNode(ctx.defs[name], ctx);
  ctx.compiled.set(name, check);
  return check;
}

function compileObject(o: Record<string, unknown>, ctx: CompileContext, checks: Check[]): void {
  const props = o.properties as Record<string, unknown> | undefined;
  const required = o.required as string[] | undefined;
  const additional = o.additionalProperties;
  const minP = o.minProperties as number | undefined;
  const maxP = o.maxProperties as number | undefined;
  if (
    props === undefined && required === undefined && additional === undefined &&
    minP === undefined && maxP === undefined
  ) return;
  const propChecks = new Map(
    Object.entries(props ?? {}).map(([k, s]) => [k, compileNode(s, ctx)] as const),
  );
  const extra = additional === undefined || additional === true
    ? undefined
    : additional === false
    ? false
    : compileNode(additional, ctx);
  checks.push((v) => {
    if (!isObject(v)) return undefined;
    if (required !== undefined) {
      for (const k of required) {
        if (!Object.hasOwn(v, k)) {
          return { path: [k], message: "required property is missing" };
        }
      }
    }
    let count = 0;
    for (const k in v) {
      if (!Object.hasOwn(v, k)) continue;
      count++;
      const c = propChecks.get(k);
      const f = c !== undefined
        ? c(v[k])
        : extra === false
        ? failure("property not allowed (additionalProperties is false)")
        : extra?.(v[k]);
      if (f !== undefined) {
        f.path.unshift(k);
        return f;
      }
    }
    if (minP !== undefined && count < minP) {
      return failure(`expected at least ${minP} properties${got(ctx, count)}`);
    }
    if (maxP !== undefined && count > maxP) {
      return failure(`expected at most ${maxP} properties${got(ctx, count)}`);
    }
    return undefined;
  });
}

function compileArray(o: Record<string, unknown>, ctx: CompileContext, checks: Check[]): void {
  const prefix = (o.prefixItems as unknown[] | undefined)?.map((s) => compileNode(s, ctx)) ?? [];
  const items = o.items === undefined ? undefined : compileNode(o.items, ctx);
  const minI = o.minItems as number | undefined;
  const maxI = o.maxItems as number | undefined;
  if (prefix.length === 0 && items === undefined && minI === undefined && maxI === undefined) {
    return;
  }
  checks.push((v) => {
    if (!Array.isArray(v)) return undefined;
    if (minI !== undefined && v.length < minI) {
      return failure(`expected at least ${minI} items${got(ctx, v.length)}`);
    }
    if (maxI !== undefined && v.length > maxI) {
      return failure(`expected at most ${maxI} items${got(ctx, v.length)}`);
    }
    for (let i = 0; i < v.length; i++) {
      const c = i < prefix.length ? prefix[i] : items;
      if (c === undefined) break;
      const f = c(v[i]);
      if (f !== undefined) {
        f.path.unshift(i);
        return f;
      }
    }
    return undefined;
  });
}

function compileString(
  o: Record<string, unknown>,
  ctx: CompileContext,
  show: (v: unknown) => string,
  checks: Check[],
): void {
  const { redact } = ctx;
  const minL = o.minLength as number | undefined;
  const maxL = o.maxLength as number | undefined;
  const pattern = o.pattern === undefined ? undefined : compilePattern(o.pattern as string, ctx);
  if (minL === undefined && maxL === undefined && pattern === undefined) return;
  checks.push((v) => {
    if (typeof v !== "string") return undefined;
    // A long string costs its length: many checks of one long string stall like many checks.
    if ((ctx.charsLeft -= v.length) < 0) throw new TooComplex();
    // Code points, as JSON Schema counts them; the UTF-16 length is at least that, and at
    // most twice it, so most strings need no count.
    if (minL !== undefined && v.length < 2 * minL) {
      const n = v.length < minL ? v.length : codePoints(v);
      if (n < minL) {
        return failure(`expected a string of at least ${minL} characters${got({ redact }, n)}`);
      }
    }
    if (maxL !== undefined && v.length > maxL) {
      const n = codePoints(v);
      if (n > maxL) {
        return failure(`expected a string of at most ${maxL} characters${got({ redact }, n)}`);
      }
    }
    if (pattern !== undefined && !pattern.test(v)) {
      return failure(`expected a string matching /${clip(pattern.source, 60)}/, got ${show(v)}`);
    }
    return undefined;
  });
}

/**
 * A `pattern` as V8's linear-time engine runs it (`l`: time linear in the string's length), or,
 * without that engine, as the backtracking one does where that is allowed (the SDK checking
 * its own results). Never with `u`, which the linear engine does not take: both sides match
 * alike (`.` and classes see UTF-16 code units).
 */
function compilePattern(source: string, ctx: CompileContext): RegExp {
  if (LINEAR_REGEXP) return new RegExp(source, "l");
  if (ctx.linearPatterns) {
    throw new RangeError(
      `pattern /${clip(source, 60)}/ needs V8's linear-time regexp engine: run Deno with ` +
        `--v8-flags=${LINEAR_REGEXP_FLAG} (or DENO_V8_FLAGS=${LINEAR_REGEXP_FLAG}; the deno ` +
        "tasks and the compiled binary do)",
    );
  }
  return new RegExp(source);
}

function compileNumber(
  o: Record<string, unknown>,
  show: (v: unknown) => string,
  checks: Check[],
): void {
  const bounds: [number | undefined, (v: number, b: number) => boolean, string][] = [
    [o.minimum as number | undefined, (v, b) => v >= b, ">="],
    [o.maximum as number | undefined, (v, b) => v <= b, "<="],
    [o.exclusiveMinimum as number | undefined, (v, b) => v > b, ">"],
    [o.exclusiveMaximum as number | undefined, (v, b) => v < b, "<"],
  ];
  const active = bounds.filter((b) => b[0] !== undefined) as [
    number,
    (v: number, b: number) => boolean,
    string,
  ][];
  const multipleOf = o.multipleOf as number | undefined;
  if (active.length === 0 && multipleOf === undefined) return;
  checks.push((v) => {
    if (typeof v !== "number") return undefined;
    for (const [b, ok, op] of active) {
      if (!ok(v, b)) return failure(`expected a number ${op} ${b}, got ${show(v)}`);
    }
    if (multipleOf !== undefined && !isMultiple(v, multipleOf)) {
      return failure(`expected a multiple of ${multipleOf}, got ${show(v)}`);
    }
    return undefined;
  });
}

function compileCombinators(
  o: Record<string, unknown>,
  ctx: CompileContext,
  checks: Check[],
): void {
  const all = (o.allOf as unknown[] | undefined)?.map((s) => compileNode(s, ctx));
  const any = (o.anyOf as unknown[] | undefined)?.map((s) => compileNode(s, ctx));
  const one = (o.oneOf as unknown[] | undefined)?.map((s) => compileNode(s, ctx));
  const not = o.not === undefined ? undefined : compileNode(o.not, ctx);
  if (all !== undefined) {
    checks.push((v) => {
      for (const c of all) {
        const f = c(v);
        if (f !== undefined) return f;
      }
      return undefined;
    });
  }
  if (any !== undefined) {
    checks.push((v) => {
      let first: Failure | undefined;
      for (const c of any) {
        const f = c(v);
        if (f === undefined) return undefined;
        first ??= f;
      }
      return noneOf("anyOf", any.length, first!);
    });
  }
  if (one !== undefined) {
    checks.push((v) => {
      let matched = 0;
      let first: Failure | undefined;
      for (const c of one) {
        const f = c(v);
        if (f === undefined) matched++;
        else first ??= f;
      }
      if (matched === 1) return undefined;
      if (matched === 0) return noneOf("oneOf", one.length, first!);
      return failure(
        ctx.redact
          ? "matches more than one of the oneOf alternatives, expected exactly one"
          : `matches ${matched} of the oneOf alternatives, expected exactly one`,
      );
    });
  }
  if (not !== undefined) {
    checks.push((v) =>
      not(v) === undefined ? failure("must not match the schema under not") : undefined
    );
  }
}

/**
 * `, got <count>` for a length or size, or nothing when redacting: the length of a secret
 * (a token, a password) narrows it down, so a redacted message says only what was expected.
 */
function got(ctx: { readonly redact: boolean }, count: number): string {
  return ctx.redact ? "" : `, got ${count}`;
}

function noneOf(keyword: string, n: number, first: Failure): Failure {
  const where = first.path.length === 0 ? "" : `${formatValuePath(first.path)}: `;
  return failure(
    `matches none of the ${n} ${keyword} alternatives (the first says: ${where}${first.message})`,
  );
}
