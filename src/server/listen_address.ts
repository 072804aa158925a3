/** A parsed `server.listen` value. */
export interface ListenAddress {
  /** The host as `Deno.serve` wants it: an IPv6 address without brackets. */
  readonly hostname: string;
  /** 0 picks a free port. */
  readonly port: number;
  /** Whether only this machine can reach it (127.0.0.0/8, ::1, localhost). */
  readonly loopback: boolean;
}

/**
 * Parses `host:port` (IPv6 in brackets: `[::1]:8787`). Port 0 asks the OS for a free port.
 *
 * @example
 * ```ts
 * parseListenAddress("127.0.0.1:0"); // { hostname: "127.0.0.1", port: 0, loopback: true }
 * ```
 * @throws {RangeError} when it is not `host:port` or the port is above 65535
 */
export function parseListenAddress(listen: string): ListenAddress {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([A-Za-z0-9.-]+)):(\d{1,5})$/.exec(listen);
  if (m === null) {
    throw new RangeError(`invalid listen address ${JSON.stringify(listen)}: expected host:port`);
  }
  const hostname = m[1] ?? m[2]!;
  const port = Number(m[3]);
  if (port > 65_535) throw new RangeError(`invalid port ${port} in ${JSON.stringify(listen)}`);
  return { hostname, port, loopback: isLoopbackHost(hostname) };
}

/**
 * Whether `host` (a name or an IP address, IPv6 with or without brackets) names this machine
 * only: `localhost` and its subdomains (RFC 6761), 127.0.0.0/8, `::1`, and `::ffff:127.x.y.z`.
 */
export function isLoopbackHost(host: string): boolean {
  const h = host.toLowerCase().replace(/^\[(.*)\]$/, "$1").replace(/\.$/, "");
  if (h === "localhost" || h.endsWith(".localhost")) return true;
  if (/^127(\.\d{1,3}){3}$/.test(h)) return h.split(".").every((p) => Number(p) <= 255);
  if (h.includes(":")) {
    const v4 = /^(?:0*:)*:?(?:0*:)*ffff:(127(?:\.\d{1,3}){3})$/.exec(h);
    if (v4) return isLoopbackHost(v4[1]!);
    return expandIpv6(h) === "0000:0000:0000:0000:0000:0000:0000:0001";
  }
  return false;
}

/** The eight groups of an IPv6 address, zero-padded; undefined when it is not one. */
function expandIpv6(h: string): string | undefined {
  const halves = h.split("::");
  if (halves.length > 2) return undefined;
  const head = halves[0] ? halves[0].split(":") : [];
  const tail = halves.length === 2 && halves[1] ? halves[1].split(":") : [];
  const missing = 8 - head.length - tail.length;
  if (halves.length === 1 ? missing !== 0 : missing < 1) return undefined;
  const groups = [...head, ...Array(halves.length === 2 ? missing : 0).fill("0"), ...tail];
  if (!groups.every((g) => /^[0-9a-f]{1,4}$/.test(g))) return undefined;
  return groups.map((g) => g.padStart(4, "0")).join(":");
}

/**
 * The host part of a `Host` header (`name`, `name:port`, `[v6]:port`), lower-cased, without
 * the port; undefined when it is malformed.
 */
export function hostOfHeader(header: string): string | undefined {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([A-Za-z0-9._-]+))(?::\d{1,5})?$/.exec(header.trim());
  if (m === null) return undefined;
  return (m[1] ?? m[2]!).toLowerCase();
}
