import { getLogger } from "@logtape/logtape";
import {
  BrokenCircuitError,
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
  type ChunkSink,
  PluginCallCancelledError,
  PluginCallError,
  PluginError,
  PluginNotFoundError,
  PluginTimeoutError,
  PluginUnavailableError,
  StreamError,
  streamNotSupported,
} from "../runtime/mod.ts";
import type { Instance, InstanceSet } from "./instance_set.ts";
import { BulkheadFullError, CircuitOpenError, RateLimitedError } from "./pipeline_errors.ts";
import { type PluginPolicy, timeoutOf } from "./policy.ts";
import { TokenBucket } from "./token_bucket.ts";
import { abortable, deadlineSignal, sleep } from "./_signals.ts";

/** Options of one call through the pipeline. */
export interface PipelineCallOptions {
  /** Aborting it cancels the call (the plugin gets `$/cancel`). */
  signal?: AbortSignal;
  /** The call's deadline in ms, retries included. Default: the policy's timeout of the method. */
  timeoutMs?: number;
  /** The plugins whose calls led to this one, ending with this plugin (internal). */
  chain?: readonly string[];
  /**
   * Streams the call into `sink` (`host.stream`): the call lasts as long as the stream, holding
   * its bulkhead slot, and is never retried once sent.
   */
  sink?: ChunkSink;
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
 * threshold) -> retry (idempotent methods only; exponential backoff with half jitter from
 * cockatiel; never past the call's deadline) -> deadline (enforced by the RPC peer, which sends
 * `$/cancel`) -> bulkhead (per instance) -> instance choice.
 *
 * Three pieces are ours rather than cockatiel's: the retry loop (its `RetryPolicy` sleeps its
 * full backoff even when the caller's signal aborts and cannot see a per-call deadline), the
 * deadline (its `TimeoutPolicy` has one duration per policy; ours differs per call), and the
 * bulkhead (its `BulkheadPolicy` keeps calls that timed out while queued in its queue, so they
 * crowd out live ones).
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
      // In half-open, whatever ends a probe without a verdict (the caller cancelled, ...) keeps
      // the breaker open: cockatiel would count it as a success and close it.
      const breaker = circuitBreaker(
        handleWhen((e) => breaker.state === CircuitState.HalfOpen || countsAsFailure(e)),
        {
          halfOpenAfter: cb.recovery_ms,
          breaker: cb.mode === "consecutive"
            ? new ConsecutiveBreaker(cb.failure_threshold)
            : new SamplingBreaker({
              threshold: cb.failure_ratio,
              duration: cb.window_ms,
              minimumRps: cb.min_requests / (cb.window_ms / 1000),
            }),
          halfOpenSampling: { calls: cb.success_threshold, threshold: 0 },
        },
      );
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
        chain: options.chain,
        deadlineAt: t0 + timeoutMs,
        timeoutMs,
        last: undefined,
        sink: options.sink,
      };
      const run = () => this.#withRetries(call);
      let result: unknown;
      if (this.#breaker === undefined) {
        result = await run();
      } else {
        try {
          // While half-open, callers beyond the probes wait for the probes' verdict; they
          // must not wait past their own deadline or signal.
          result = this.#breaker.state === CircuitState.HalfOpen
            ? await this.#mapErrors(
              abortable(this.#breaker.execute(run), deadlineSignal(options.signal, timeoutMs)),
              call,
            )
            : await this.#breaker.execute(run);
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
    // A stream is never sent twice: chunks may have reached the caller.
    const idempotent = this.#idempotent.has(call.method) && call.sink === undefined;
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
   * peer enforces the remaining time (and sends `$/cancel`); only a call that must wait (for a
   * bulkhead slot, or for its only instance to restart) gets a deadline signal.
   */
  async #attempt(call: Attempt): Promise<unknown> {
    const { method, params, signal } = call;
    let left = Math.round(call.deadlineAt - performance.now());
    if (left < 1) throw this.#timeout(call);
    let inst = this.instances.pick(call.last);
    if (inst === undefined) {
      const all = this.instances.instances;
      if (all.length !== 1) {
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
      // The only instance: wait for its restart, within the deadline (its endpoint says why
      // when it is failed or stopped). One that reports unhealthy still gets the call: there
      // is nowhere else to send it.
      inst = all[0]!;
      await this.#mapErrors(inst.endpoint.whenReady(deadlineSignal(signal, left)), call);
      left = Math.round(call.deadlineAt - performance.now());
      if (left < 1) throw this.#timeout(call);
    }
    call.last = inst;
    const bulkhead = inst.bulkhead;
    inst.inFlight++;
    let acquired = bulkhead.tryAcquire();
    try {
      if (!acquired) {
        // Queued: the wait counts against the deadline, and an abort leaves the queue.
        acquired = await this.#mapErrors(
          bulkhead.acquire(deadlineSignal(signal, left)),
          call,
        ) as boolean;
        if (!acquired) {
          const full = new BulkheadFullError(
            this.plugin,
            method,
            bulkhead.maxInFlight,
            bulkhead.queue,
          );
          // Refused before the plugin saw it: another instance may take it. With one instance a
          // retry would only add load to what is shedding it.
          if (this.instances.instances.length > 1) notSent.add(full);
          throw full;
        }
        left = Math.round(call.deadlineAt - performance.now());
        if (left < 1) throw this.#timeout(call);
      }
      if (inst.endpoint.state !== "ready") {
        const e = new PluginUnavailableError(this.plugin, inst.endpoint.state, "it stopped", {
          method,
        });
        notSent.add(e);
        throw e;
      }
      return await this.#mapErrors(
        call.sink === undefined
          ? inst.endpoint.call(method, params, { signal, timeoutMs: left, chain: call.chain })
          : inst.endpoint.stream?.(method, params, { signal, timeoutMs: left, sink: call.sink }) ??
            Promise.reject(streamNotSupported(this.plugin, method, "where it runs (remote)")),
        call,
      );
    } finally {
      if (acquired) bulkhead.release();
      inst.inFlight--;
    }
  }

  /** The call's timeout; one whose deadline the caller shortened is not the plugin's fault. */
  #timeout(call: Attempt, cause?: unknown): PluginTimeoutError {
    const e = new PluginTimeoutError(this.plugin, call.method, call.timeoutMs, { cause });
    if (call.timeoutMs < timeoutOf(this.policy, call.method)) callerDeadline.add(e);
    return e;
  }

  /**
   * A timeout reports the call's whole deadline (not what was left of it for this attempt);
   * an abort that is neither becomes a cancellation.
   */
  async #mapErrors(p: Promise<unknown>, call: Attempt): Promise<unknown> {
    try {
      return await p;
    } catch (e) {
      if (e instanceof PluginTimeoutError) throw this.#timeout(call, e);
      if (e instanceof PluginError) throw e;
      if (performance.now() >= call.deadlineAt - 1) throw this.#timeout(call, e);
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
  readonly chain: readonly string[] | undefined;
  /** `performance.now()` when the whole call must be done. */
  readonly deadlineAt: number;
  readonly timeoutMs: number;
  /** The instance of the previous attempt (a retry prefers another). */
  last: Instance | undefined;
  /** Where a streamed call's chunks go. */
  readonly sink: ChunkSink | undefined;
}

const NEVER = new AbortController().signal;

/** Timeouts of calls whose caller gave less than the policy's deadline. */
const callerDeadline = new WeakSet<object>();

/**
 * JSON-RPC "invalid request" or "invalid params" (params that are not an object or array, or
 * that the method refuses as such): the caller's mistake, the same on every attempt.
 */
function invalidParams(e: unknown): boolean {
  return e instanceof PluginCallError && (e.remoteCode === -32600 || e.remoteCode === -32602);
}

/**
 * Which failures count toward opening the breaker: the plugin's (errors, timeouts, crashes),
 * not the caller's (cancelled, unknown method, invalid params, a deadline shorter than the
 * policy's, a stream whose consumer did not read until its deadline: `STREAM_NOT_READ`) nor a
 * full bulkhead. Of the `StreamError`s only `STREAM_PROTOCOL` is the plugin's.
 */
function countsAsFailure(e: unknown): boolean {
  if (e instanceof PluginCallCancelledError || e instanceof PluginNotFoundError) return false;
  if (e instanceof BulkheadFullError || invalidParams(e)) return false;
  if (e instanceof PluginTimeoutError && callerDeadline.has(e)) return false;
  if (e instanceof StreamError && e.code !== "STREAM_PROTOCOL") return false;
  return true;
}

/** Whether another attempt may help, and cannot run a non-idempotent method twice. */
function retryable(e: unknown, idempotent: boolean): boolean {
  if (e !== null && typeof e === "object" && notSent.has(e)) return true;
  if (!idempotent) return false;
  if (e instanceof PluginCallCancelledError || e instanceof PluginNotFoundError) return false;
  if (e instanceof PluginTimeoutError) return false; // the deadline is spent
  if (e instanceof BulkheadFullError || invalidParams(e)) return false;
  return e instanceof PluginError;
}
