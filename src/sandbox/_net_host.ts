/**
 * Host parsing and address classes for network grants. Private to the sandbox.
 *
 * @module
 */

/** A validated egress host. */
export type ParsedHost =
  | { readonly kind: "dns"; readonly host: string }
  | { readonly kind: "ipv4"; readonly host: string; readonly octets: readonly number[] }
  | { readonly kind: "ipv6"; readonly host: string; readonly groups: readonly number[] };

/** Address classes the host config must opt into. */
export type AddressClass = "loopback" | "link-local" | "metadata";

/**
 * What `--deny-net` gets for each class the config does not allow. Deno 2.9 parses IPv4 CIDRs
 * but not IPv6 ones (`[fe80::]/10` is "invalid host"), so IPv6 entries are single addresses.
 * Deno compares the resolved IP of a host name with these, and maps `::ffff:a.b.c.d` to IPv4.
 */
export const DENY_RANGES: Readonly<Record<"loopback" | "link-local", readonly string[]>> = {
  // 0.0.0.0/8 and [::]: connecting to "this host" reaches loopback listeners on Linux.
  loopback: ["0.0.0.0/8", "127.0.0.0/8", "[::1]", "[::]"],
  // 100.100.100.200: Alibaba Cloud metadata; fd00:ec2::254: AWS IPv6 metadata.
  "link-local": ["100.100.100.200", "169.254.0.0/16", "[fd00:ec2::254]"],
};

const METADATA_NAMES = new Set([
  "metadata",
  "metadata.google.internal",
  "metadata.goog",
  "instance-data",
  "instance-data.ec2.internal",
]);

const LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
const IPV4 = /^(?:0|[1-9][0-9]{0,2})(?:\.(?:0|[1-9][0-9]{0,2})){3}$/;

/**
 * Parses one manifest host: a DNS name, an IPv4 literal, or an IPv6 literal (with or without
 * brackets). Returns a reason string when it is not acceptable.
 */
export function parseHost(raw: string): ParsedHost | string {
  if (/[\s,/@*\\?#%\0]/.test(raw)) {
    return raw.includes("*")
      ? "wildcards are not supported: Deno grants exact hosts; list each host"
      : "a host may not contain spaces, ',', '/', '@', '*', '?', '#', '%' or '\\'; " +
        "write a bare host name or IP address (the port goes in ports:)";
  }
  if (/^[^:\[\]]+:[0-9]*$/.test(raw)) {
    return "write the host without a port; ports go in ports: (Deno grants host:port pairs)";
  }
  if (raw.includes(":")) return parseIpv6(raw);
  let host = raw.toLowerCase();
  if (host.endsWith(".")) host = host.slice(0, -1);
  if (host === "" || host.length > 253) return "an empty or over-long host name";
  const labels = host.split(".");
  const last = labels[labels.length - 1]!;
  // getaddrinfo reads "127.1", "0177.0.0.1" and "0x7f.1" as IPv4 addresses; only the
  // canonical dotted quad is accepted so that the classes below see the real address.
  if (/^[0-9]+$/.test(last) || /^0x[0-9a-f]*$/.test(last)) {
    if (!IPV4.test(host)) {
      return "a numeric host must be a plain dotted-quad IPv4 address like 192.0.2.10";
    }
    const octets = labels.map(Number);
    if (octets.some((o) => o > 255)) return "an IPv4 address has octets 0-255";
    return { kind: "ipv4", host, octets };
  }
  if (!labels.every((l) => LABEL.test(l))) {
    return "not a valid DNS name (letters, digits and '-' per label; use punycode for " +
      "international names)";
  }
  return { kind: "dns", host };
}

function parseIpv6(raw: string): ParsedHost | string {
  const inner = raw.startsWith("[") && raw.endsWith("]") ? raw.slice(1, -1) : raw;
  if (inner.includes("[") || inner.includes("]") || !/^[0-9a-fA-F:.]+$/.test(inner)) {
    return "not a valid IPv6 address (zone ids like %eth0 are not supported)";
  }
  let canonical: string;
  try {
    canonical = new URL(`http://[${inner}]/`).hostname.slice(1, -1);
  } catch {
    return "not a valid IPv6 address";
  }
  const groups = expandIpv6(canonical);
  if (groups === undefined) return "not a valid IPv6 address";
  return { kind: "ipv6", host: canonical, groups };
}

/** Eight 16-bit groups of a canonical (URL-normalised, hex-only) IPv6 address. */
function expandIpv6(text: string): number[] | undefined {
  const halves = text.split("::");
  if (halves.length > 2) return undefined;
  const head = halves[0] === "" ? [] : halves[0]!.split(":");
  const tail = halves.length === 2 && halves[1] !== "" ? halves[1]!.split(":") : [];
  const fill = 8 - head.length - tail.length;
  if (halves.length === 1 ? fill !== 0 : fill < 0) return undefined;
  const groups = [...head, ...Array(halves.length === 2 ? fill : 0).fill("0"), ...tail];
  const numbers = groups.map((g) => /^[0-9a-f]{1,4}$/.test(g) ? parseInt(g, 16) : NaN);
  return numbers.some(Number.isNaN) ? undefined : numbers;
}

function classifyIpv4(o: readonly number[]): AddressClass | undefined {
  const [a, b, c, d] = o as [number, number, number, number];
  if (a === 127 || a === 0) return "loopback";
  if (
    (a === 169 && b === 254 && c === 169 && d === 254) ||
    (a === 100 && b === 100 && c === 100 && d === 200)
  ) {
    return "metadata";
  }
  if (a === 169 && b === 254) return "link-local";
  return undefined;
}

/** The class of a parsed host, or `undefined` for an ordinary address. */
export function classifyHost(host: ParsedHost): AddressClass | undefined {
  switch (host.kind) {
    case "dns":
      if (host.host === "localhost" || host.host.endsWith(".localhost")) return "loopback";
      if (METADATA_NAMES.has(host.host)) return "metadata";
      return undefined;
    case "ipv4":
      return classifyIpv4(host.octets);
    case "ipv6": {
      const g = host.groups;
      const zeros = (n: number) => g.slice(0, n).every((x) => x === 0);
      if (zeros(7) && (g[7] === 1 || g[7] === 0)) return "loopback";
      if ((g[0]! & 0xffc0) === 0xfe80) return "link-local";
      const awsMetadata = [0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x254];
      if (g.every((x, i) => x === awsMetadata[i])) return "metadata";
      // IPv4-mapped (::ffff:a.b.c.d), IPv4-compatible (::a.b.c.d) and NAT64 (64:ff9b::a.b.c.d)
      // addresses reach the embedded IPv4 address.
      const mapped = zeros(5) && g[5] === 0xffff;
      const compatible = zeros(6);
      const nat64 = g[0] === 0x64 && g[1] === 0xff9b && g.slice(2, 6).every((x) => x === 0);
      if (mapped || compatible || nat64) {
        const v4 = [g[6]! >> 8, g[6]! & 0xff, g[7]! >> 8, g[7]! & 0xff];
        return classifyIpv4(v4);
      }
      return undefined;
    }
  }
}

/** `host:port`, with IPv6 literals in brackets, as `--allow-net` wants it. */
export function netEntry(host: ParsedHost, port: number): string {
  return host.kind === "ipv6" ? `[${host.host}]:${port}` : `${host.host}:${port}`;
}
