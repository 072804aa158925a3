import type { NatsConnection } from "@nats-io/transport-node";
import { Svcm } from "@nats-io/services";

/**
 * `new Svcm(nc)`. `@nats-io/services` 3.0.0-25 declares its types against nats-core
 * 3.0.0-50 while the transport is on 3.4.0: the same connection at run time, two copies of
 * its types at compile time.
 */
export function svcm(nc: NatsConnection): Svcm {
  return new Svcm(nc as unknown as ConstructorParameters<typeof Svcm>[0]);
}
