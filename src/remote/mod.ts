/**
 * Remote plugins over NATS: the worker side (`plugsconc serve`, {@linkcode RemoteWorker})
 * exposes a host's plugins as NATS services; the host side ({@linkcode RemoteLauncher},
 * {@linkcode RemoteEndpoint}) calls them through the same pipeline as local plugins.
 *
 * @module
 */
export {
  checkNatsSecurity,
  checkServerRequiresAuth,
  checkWorkerSecurity,
  hasAuth,
  isLoopback,
  type NatsConfig,
  natsConnectOptions,
  type NatsRole,
  redactServers,
  redactUrl,
  serverHosts,
  urlCredentials,
} from "./nats_options.ts";
export { placementOf } from "./placement.ts";
export { RemoteEndpoint } from "./remote_endpoint.ts";
export {
  RemoteConfigError,
  RemoteError,
  type RemoteErrorCode,
  RemoteWorkerLostError,
} from "./remote_error.ts";
export { RemoteLauncher, type RemoteLauncherOptions } from "./remote_launcher.ts";
export { RemoteLink, type RemoteLinkOptions, type RemoteWorkerInfo } from "./remote_link.ts";
export { RemoteWorker, type RemoteWorkerOptions, type ServedPlugin } from "./remote_worker.ts";
export { callSubject, cancelSubject, H as HEADERS, queueGroup, serviceName } from "./wire.ts";
