/**
 * The resilient call pipeline of each plugin: rate limit -> circuit breaker -> retry ->
 * deadline -> bulkhead -> instance choice, with health checks across `instances: N`
 * processes, and the effective policy of a plugin from config and manifest.
 *
 * @module
 */
export {
  CallPipeline,
  type CallPipelineOptions,
  type PipelineCallOptions,
} from "./call_pipeline.ts";
export {
  type HealthStatus,
  type Instance,
  InstanceSet,
  type InstanceSetOptions,
} from "./instance_set.ts";
export { Bulkhead } from "./bulkhead.ts";
export { BulkheadFullError, CircuitOpenError, RateLimitedError } from "./pipeline_errors.ts";
export { effectivePolicy, explainPolicy, type PluginPolicy, timeoutOf } from "./policy.ts";
export { TokenBucket } from "./token_bucket.ts";
