/**
 * What the log gate asks a plugin process about the plugin's own requests to host services, and
 * the handler wrapper that charges the ones answered with an error (`log_gate.ts`). @module
 */
import type { JsonRpcPeer, RpcHandler } from "../rpc/mod.ts";
import { isPromiseLike } from "../rpc/_is_promise_like.ts";
import type { LogGate } from "./log_gate.ts";
import type { LogGateClaims } from "./_log_gate_types.ts";

/**
 * The most requests of a plugin's the host serves at once whose lines passed uncharged; more
 * cost their bytes like log lines (two of the host's per-process bounds: 64 calls to other
 * plugins in flight and the process service's own).
 */
export const MAX_FREE_REQUESTS = 128;

/** The request half of a gate's claims: which of the plugin's request lines pass uncharged. */
export function requestClaims(
  peer: JsonRpcPeer,
): Pick<LogGateClaims, "claimRequest" | "settleRequest"> {
  return {
    claimRequest: (id) => peer.inFlightCount < MAX_FREE_REQUESTS && !peer.isServing(id),
    settleRequest: (id) => peer.isServing(id),
  };
}

/**
 * `handlers`, each wrapped so that a request whose line passed the gate uncharged and that is
 * answered with an error is charged to the plugin's log budget ({@linkcode LogGate.requestFailed}):
 * a plugin cannot make the host parse requests it refuses for free, without end.
 *
 * @param gate the gate reading the plugin's stdout (created after the peer, so asked late)
 */
export function chargeFailedRequests(
  handlers: Readonly<Record<string, RpcHandler>> | undefined,
  gate: () => LogGate | undefined,
): Record<string, RpcHandler> {
  const wrapped: Record<string, RpcHandler> = {};
  for (const [method, handler] of Object.entries(handlers ?? {})) {
    wrapped[method] = (params, ctx) => {
      // The handler starts while the decoder parses its line: the gate still knows its size.
      const g = gate();
      const bytes = g?.passingRequest === true ? g.lineBytes : 0;
      const failed = (error: unknown): never => {
        if (bytes > 0) g!.requestFailed(bytes);
        throw error;
      };
      let value: unknown;
      try {
        value = handler(params, ctx);
      } catch (error) {
        failed(error);
      }
      return isPromiseLike(value) ? Promise.resolve(value).then(undefined, failed) : value;
    };
  }
  return wrapped;
}
