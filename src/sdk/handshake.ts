/** The wire protocol version this SDK speaks. */
export const PROTOCOL_VERSION = 1;

/**
 * The handshake cookie a manifest uses unless it sets its own. Not a secret: it only stops a
 * plugin from being run by hand by mistake (as in hashicorp/go-plugin).
 */
export const DEFAULT_HANDSHAKE = {
  magic_cookie_key: "PLUGSCONC_PLUGIN",
  magic_cookie_value: "b3f1c9e2-plugsconc-plugin-v1",
} as const;
