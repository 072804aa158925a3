import assert from "node:assert/strict";
import { describeWidening, widenedGrants } from "./widened_grants.ts";

function grants(
  g: Partial<Record<"read" | "write" | "net" | "env" | "process" | "plugins", string[]>>,
  flags: string[] = ["--v8-flags=--max-old-space-size=64"],
) {
  return {
    grants: { read: [], write: [], net: [], env: [], process: [], plugins: [], ...g },
    argv: ["run", "--no-prompt", ...flags, "/plugins/x/main.ts"],
  };
}

Deno.test("widenedGrants() reports what the new sandbox adds, a path covered by a folder above it excepted", () => {
  const before = grants({
    read: ["/srv/data"],
    write: ["/srv/data/out"],
    net: ["api.example.com:443"],
    env: ["TZ"],
    process: ["exec /usr/bin/rsync -a *"],
  });
  assert.deepEqual(widenedGrants(before, before), []);
  // Narrower: fewer grants, a sub-folder of a granted folder.
  assert.deepEqual(widenedGrants(before, grants({ read: ["/srv/data/sub"] })), []);
  const after = grants({
    read: ["/srv/data", "/srv/database", "/etc"],
    write: ["/srv/data"],
    net: ["api.example.com:443", "api.example.com:80"],
    env: ["TZ", "HOME"],
    process: ["exec /usr/bin/rsync -a *", "exec /bin/sh"],
  });
  const widened = widenedGrants(before, after);
  assert.deepEqual(widened, [
    // "/srv/database" is not inside "/srv/data", though its name starts the same.
    { kind: "read", grant: "/srv/database" },
    { kind: "read", grant: "/etc" },
    { kind: "write", grant: "/srv/data" },
    { kind: "net", grant: "api.example.com:80" },
    { kind: "env", grant: "HOME" },
    { kind: "process", grant: "exec /bin/sh" },
  ]);
  assert.equal(
    describeWidening(widened.slice(0, 2)),
    "+read /srv/database, +read /etc",
  );
});

Deno.test("widenedGrants() reports a bigger heap and new flags such as --unstable-net (UDP)", () => {
  const before = grants({ net: ["0.0.0.0:9000"] }, [
    "--v8-flags=--max-old-space-size=64",
    "--allow-net=0.0.0.0:9000",
  ]);
  // The same host:port over UDP: the grant strings are equal, the flag is new.
  const udp = grants({ net: ["0.0.0.0:9000"] }, [
    "--v8-flags=--max-old-space-size=4096",
    "--allow-net=0.0.0.0:9000",
    "--unstable-net",
  ]);
  assert.deepEqual(widenedGrants(before, udp), [
    { kind: "memory", grant: "4096 MB (was 64 MB)" },
    { kind: "flag", grant: "--unstable-net" },
  ]);
  // Less memory and fewer flags are not wider.
  assert.deepEqual(widenedGrants(udp, before), []);
});

Deno.test("widenedGrants() reports a new plugin-to-plugin call grant, not a removed one", () => {
  const before = grants({ plugins: ["b.echo", "b.add"] });
  assert.deepEqual(widenedGrants(before, grants({ plugins: ["b.echo", "b.sub"] })), [
    { kind: "plugins", grant: "b.sub" },
  ]);
  assert.deepEqual(widenedGrants(before, grants({ plugins: ["b.echo"] })), []);
});
