import { getLogger } from "@logtape/logtape";
import {
  BrokenCircuitError,
  BulkheadRejectedError,
  circuitBreaker,
  type CircuitBreakerPolicy,
  CircuitState,
  ConsecutiveBreaker,
  ExponentialBackoff,
  halfJitterGenerator,
  handleWhen,
  type IBackoff,
  SamplingBreaker,
} from "cockatiel";
import type { MetricsRegistry } from "../metrics/mod.ts";
import {
  PluginCallCancelledError,
  PluginError,
  PluginNotFoundError,
  PluginTimeoutError,
  PluginUnavailableError,
} from "../runtime/mod.ts";
import type { Instance, InstanceSet } from "./instance_set.ts";
import { BulkheadFullError, CircuitOpenError, RateLimitedError } from "./pipeline_errors.ts";
import { type PluginPolicy, timeoutOf } from "./policy.ts";
import { TokenBucket } from "./token_bucket.ts";

/** Options of one call through the pipeline. */
export interface PipelineCallOptions {
  /** Aborting it cancels the call (the plugin gets `$/cancel`). */
  signal?: AbortSignal;
  /** The call's deadline in ms, retries included. Default: the policy's timeout of the method. */
  timeoutMs?: number;
}

/** Options for {@link CallPipeline}. */
export interface CallPipelineOptions {
  readonly policy: PluginPolicy;
  readonly instances: InstanceSet;
  /** Where the pipeline's metrics go (series labelled by plugin and method). */
  readonly metrics: MetricsRegistry;
}

const BREAKER_STATE: Record<CircuitState, number> = {
  [CircuitState.Closed]: 0,
  [CircuitState.Open]: 1,
  [CircuitState.HalfOpen]: 2,
  [CircuitState.Isolated]: 1,
};

/** Errors raised before the request reached a plugin: retrying them never runs a method twice. */
const notSent = new WeakSet<object>();

interface MethodMetrics {
  readonly requests: { inc(): void };
  readonly successes: { inc(): void };
  readonly inFlight: { inc(): void; dec(): void };
  readonly latency: { observe(v: number): void };
}

/**
 * The resilient call path of one plugin (DESIGN §6), in this order: rate limit (token bucket)
 * -> circuit breaker (cockatiel; consecutive or failure-ratio mode, half-open probes, success
 * threshold) -> retry (idempotent methods only; exponential backoff with half jitter
 * from cockatiel; never past the call's deadline) -> deadline (`AbortSignal.timeout`, which
 * reaches the plugin as `$/cancel`) -> bulkhead (cockatiel, per instance) -> instance choice.
 *
 * The retry loop is ours, not cockatiel's `RetryPolicy`: that one sleeps its full backoff even
 * when the caller's signal aborts and cannot see a per-call deadline, so a retry could end
 * after the caller gave up. The deadline is an `AbortSignal`, not cockatiel's `TimeoutPolicy`,
 * because it differs per call (the caller's `timeoutMs`, less the time already spent).
 */
export class CallPipeline {
  readonly plugin: string;
  readonly policy: PluginPolicy;
  readonly instances: InstanceSet;
  readonly #bucket: TokenBucket | undefined;
  readonly #breaker: CircuitBreakerPolicy | undefined;
  readonly #backoff: ExponentialBackoff<unknown>;
  readonly #idempotent: ReadonlySet<string>;
  readonly #log = getLogger(["plugsconc", "pipeline"]);
  readonly #metrics: MetricsRegistry;
  readonly #methods = new Map<string, MethodMetrics>();
  readonly #rateLimited: { inc(): void };
  readonly #retries: { inc(): void };
  readonly #trips: { inc(): void };
  #openedAt = 0;

  /** @param options see {@link CallPipelineOptions} */
  constructor(options: CallPipelineOptions) {
    const { policy, metrics } = options;
    this.plugin = policy.plugin;
    this.policy = policy;
    this.instances = options.instances;
    this.#metrics = metrics;
    this.#idempotent = new Set(policy.idempotent);
    const rl = policy.rate_limit;
    this.#bucket = rl.rps > 0 ? new TokenBucket(rl.rps, Math.max(1, rl.burst)) : undefined;
    const r = policy.retry;
    this.#backoff = new ExponentialBackoff({
      initialDelay: r.initial_delay_ms,
      maxDelay: r.max_delay_ms,
      exponent: r.multiplier,
      generator: halfJitterGenerator,
    });
    const p = [this.plugin];
    this.#rateLimited = metrics.counter(
      "plugsconc_rate_limited_total",
      "Calls refused by the plugin's rate limit.",
      ["plugin"],
    ).labels(...p);
    this.#retries = metrics.counter(
      "plugsconc_retries_total",
      "Retried call attempts.",
      ["plugin"],
    ).labels(...p);
    this.#trips = metrics.counter(
      "plugsconc_breaker_trips_total",
      "Times the circuit breaker opened.",
      ["plugin"],
    ).labels(...p);
    const breakerState = metrics.gauge(
      "plugsconc_breaker_state",
      "Circuit breaker state: 0 closed, 1 open, 2 half-open.",
      ["plugin"],
    ).labels(...p);
    const cb = policy.circuit_breaker;
    if (cb.enabled) {
      const breaker = circuitBreaker(handleWhen(countsAsFailure), {
        halfOpenAfter: cb.recovery_ms,
        breaker: cb.mode === "consecutive"
          ? new ConsecutiveBreaker(cb.failure_threshold)
          : new SamplingBreaker({
            threshold: cb.failure_ratio,
            duration: cb.window_ms,
            minimumRps: cb.min_requests / (cb.window_ms / 1000),
          }),
        halfOpenSampling: { calls: cb.success_threshold, threshold: 0 },
      });
      breaker.onBreak((reason) => {
        this.#openedAt = performance.now();
        this.#trips.inc();
        const e = "error" in reason ? reason.error : undefined;
        this.#log.warning(
          "plugin {plugin}: circuit breaker opened after {reason}; calls fail fast for {ms} ms",
          {
            plugin: this.plugin,
            reason: e instanceof Error ? e.message : "repeated failures",
            ms: cb.recovery_ms,
          },
        );
      });
      breaker.onHalfOpen(() =>
        this.#log.info("plugin {plugin}: circuit breaker half-open, probing", {
          plugin: this.plugin,
        })
      );
      breaker.onReset(() =>
        this.#log.info("plugin {plugin}: circuit breaker closed again", { plugin: this.plugin })
      );
      breaker.onStateChange((s) => breakerState.set(BREAKER_STATE[s]));
      this.#breaker = breaker;
    }
  }

  /** The breaker's state: `closed`, `open` or `half-open` (`closed` when it is off). */
  get breakerState(): "closed" | "open" | "half-open" {
    const s = this.#breaker?.state ?? CircuitState.Closed;
    return s === CircuitState.Closed
      ? "closed"
      : s === CircuitState.HalfOpen
      ? "half-open"
      : "open";
  }

  #methodMetrics(method: string): MethodMetrics {
    let m = this.#methods.get(method);
    if (m === undefined) {
      const reg = this.#metrics;
      const l = [this.plugin, method];
      m = {
        requests: reg.counter("plugsconc_calls_total", "Calls made, by plugin and method.", [
          "plugin",
          "method",
        ]).labels(...l),
        successes: reg.counter("plugsconc_call_successes_total", "Calls that succeeded.", [
          "plugin",
          "method",
        ]).labels(...l),
        inFlight: reg.gauge("plugsconc_calls_in_flight", "Calls in flight.", ["plugin", "method"])
          .labels(...l),
        latency: reg.histogram(
          "plugsconc_call_duration_seconds",
          "Call latency through the whole pipeline, in seconds.",
          ["plugin", "method"],
        ).labels(...l),
      };
      this.#methods.set(method, m);
    }
    return m;
  }

  /**
   * Calls `method` through every policy.
   *
   * @throws {RateLimitedError} {CircuitOpenError} {BulkheadFullError} {PluginTimeoutError}
   *   {PluginUnavailableError} and the runtime's call errors (handler error, crash, ...)
   */
  async call(method: string, params: unknown, options: PipelineCallOptions = {}): Promise<unknown> {
    const m = this.#methodMetrics(method);
    m.requests.inc();
    const t0 = performance.now();
    m.inFlight.inc();
    try {
      if (this.#bucket !== undefined && !this.#bucket.take()) {
        this.#rateLimited.inc();
        throw new RateLimitedError(
          this.plugin,
          method,
          this.#bucket.retryAfterMs(),
          this.#bucket.rps,
        );
      }
      const timeoutMs = options.timeoutMs ?? timeoutOf(this.policy, method);
      const call: Attempt = {
        method,
        params,
        signal: options.signal,
        deadlineAt: t0 + timeoutMs,
        timeoutMs,
        last: undefined,
      };
      const run = () => this.#withRetries(call);
      let result: unknown;
      if (this.#breaker === undefined) {
        result = await run();
      } else {
        try {
          result = await this.#breaker.execute(run);
        } catch (e) {
          if (e instanceof BrokenCircuitError) {
            throw new CircuitOpenError(
              this.plugin,
              method,
              this.policy.circuit_breaker.recovery_ms - (performance.now() - this.#openedAt),
              {
                cause: this.#breaker.lastFailure && "error" in this.#breaker.lastFailure
                  ? this.#breaker.lastFailure.error
                  : undefined,
              },
            );
          }
          throw e;
        }
      }
      m.successes.inc();
      return result;
    } catch (e) {
      this.#metrics.counter("plugsconc_call_failures_total", "Failed calls, by error code.", [
        "plugin",
        "method",
        "code",
      ]).inc([this.plugin, method, (e as { code?: string })?.code ?? "UNKNOWN"]);
      throw e;
    } finally {
      m.inFlight.dec();
      m.latency.observe((performance.now() - t0) / 1000);
    }
  }

  async #withRetries(call: Attempt): Promise<unknown> {
    const maxAttempts = this.policy.retry.max_attempts;
    const idempotent = this.#idempotent.has(call.method);
    let backoff: IBackoff<unknown> | undefined;
    for (let attempt = 1;; attempt++) {
      try {
        return await this.#attempt(call);
      } catch (e) {
        const signal = call.signal;
        if (attempt >= maxAttempts || signal?.aborted || !retryable(e, idempotent)) throw e;
        const context = { attempt, signal: signal ?? NEVER, result: { error: e } };
        backoff = backoff ? backoff.next(context) : this.#backoff.next();
        const delay = backoff.duration;
        // A retry that cannot start before the deadline is not made: the caller gets the
        // real error now instead of a timeout later.
        if (performance.now() + delay >= call.deadlineAt) throw e;
        this.#retries.inc();
        this.#log.debug(
          "plugin {plugin}: retrying {method} in {delay} ms (attempt {attempt}): {error}",
          {
            plugin: this.plugin,
            method: call.method,
            delay: Math.round(delay),
            attempt: attempt + 1,
            error: (e as Error)?.message,
          },
        );
        if (!(await sleep(delay, signal))) throw e;
      }
    }
  }

  /**
   * One attempt on one instance. The fast path makes no timer or signal of its own: the RPC
   * peer enforces the remaining time (and sends `$/cancel`); only a call that must queue in a
   * bulkhead gets a deadline signal, so that it stops waiting in time.
   */
  async #attempt(call: Attempt): Promise<unknown> {
    const { method, params, signal, timeoutMs } = call;
    const left = Math.round(call.deadlineAt - performance.now());
    if (left < 1) throw new PluginTimeoutError(this.plugin, method, timeoutMs);
    const inst = this.instances.pick(call.last);
    if (inst === undefined) {
      // None running: with one instance, wait for its restart (bounded by the deadline); its
      // supervisor says why when it is failed or stopped.
      const all = this.instances.instances;
      if (all.length === 1) {
        return await this.#mapErrors(
          all[0]!.supervisor.call(method, params, { signal, timeoutMs: left }),
          call,
        );
      }
      const e = new PluginUnavailableError(
        this.plugin,
        "unavailable",
        `none of its ${all.length} instances is running and healthy; ` +
          "see plugsconc logs, or plugins list for their state",
        { method },
      );
      notSent.add(e);
      throw e;
    }
    call.last = inst;
    inst.inFlight++;
    try {
      const proc = inst.supervisor.process!;
      if (inst.bulkhead.executionSlots > 0) {
        return await this.#mapErrors(
          inst.bulkhead.execute(() => proc.call(method, params, { signal, timeoutMs: left })),
          call,
        );
      }
      // Queued: the wait counts against the deadline.
      const deadline = AbortSignal.timeout(left);
      const wait = signal ? AbortSignal.any([signal, deadline]) : deadline;
      const run = inst.bulkhead.execute(() => {
        const rest = Math.round(call.deadlineAt - performance.now());
        if (rest < 1) throw new PluginTimeoutError(this.plugin, method, timeoutMs);
        return proc.call(method, params, { signal, timeoutMs: rest });
      }, wait);
      return await this.#mapErrors(abortable(run, wait), call);
    } catch (e) {
      if (e instanceof BulkheadRejectedError) {
        const full = new BulkheadFullError(
          this.plugin,
          method,
          this.policy.bulkhead.max_in_flight,
          this.policy.bulkhead.queue,
        );
        // Refused before the plugin saw it: another instance may take it. With one instance a
        // retry would only add load to what is shedding it.
        if (this.instances.instances.length > 1) notSent.add(full);
        throw full;
      }
      throw e;
    } finally {
      inst.inFlight--;
    }
  }

  /**
   * A timeout reports the call's whole deadline (not what was left of it for this attempt);
   * an abort that is neither becomes a cancellation.
   */
  async #mapErrors(p: Promise<unknown>, call: Attempt): Promise<unknown> {
    try {
      return await p;
    } catch (e) {
      if (e instanceof PluginTimeoutError) {
        throw new PluginTimeoutError(this.plugin, call.method, call.timeoutMs, { cause: e });
      }
      if (e instanceof PluginError || e instanceof BulkheadRejectedError) throw e;
      if (performance.now() >= call.deadlineAt - 1) {
        throw new PluginTimeoutError(this.plugin, call.method, call.timeoutMs, { cause: e });
      }
      if (call.signal?.aborted) {
        throw new PluginCallCancelledError(this.plugin, call.method, { cause: e });
      }
      throw e;
    }
  }
}

/** One call's state across its attempts. */
interface Attempt {
  readonly method: string;
  readonly params: unknown;
  readonly signal: AbortSignal | undefined;
  /** `performance.now()` when the whole call must be done. */
  readonly deadlineAt: number;
  readonly timeoutMs: number;
  /** The instance of the previous attempt (a retry prefers another). */
  last: Instance | undefined;
}

const NEVER = new AbortController().signal;

/** Which failures count toward opening the breaker: the plugin's, not the caller's or ours. */
function countsAsFailure(e: unknown): boolean {
  if (e instanceof PluginCallCancelledError) return false;
  if (e instanceof PluginNotFoundError) return false;
  if (e instanceof BulkheadFullError) return false;
  return true;
}

/** Whether another attempt may help, and cannot run a non-idempotent method twice. */
function retryable(e: unknown, idempotent: boolean): boolean {
  if (e !== null && typeof e === "object" && notSent.has(e)) return true;
  if (!idempotent) return false;
  if (e instanceof PluginCallCancelledError || e instanceof PluginNotFoundError) return false;
  if (e instanceof PluginTimeoutError) return false; // the deadline is spent
  return e instanceof PluginError;
}

/** `p`, or a rejection as soon as `signal` aborts (a call queued in a bulkhead). */
function abortable<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) {
    p.catch(() => {});
    return Promise.reject(signal.reason);
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => {
      p.catch(() => {});
      reject(signal.reason);
    };
    signal.addEventListener("abort", onAbort, { once: true });
    p.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}

/** Waits `ms`; false if `signal` aborted first. */
function sleep(ms: number, signal: AbortSignal | undefined): Promise<boolean> {
  return new Promise((resolve) => {
    const done = (ok: boolean) => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
      resolve(ok);
    };
    const onAbort = () => done(false);
    const timer = setTimeout(() => done(true), ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
