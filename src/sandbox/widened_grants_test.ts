import assert from "node:assert/strict";
import { describeWidening, widenedGrants } from "./widened_grants.ts";

function grants(g: Partial<Record<"read" | "write" | "net" | "env" | "process", string[]>>) {
  return { grants: { read: [], write: [], net: [], env: [], process: [], ...g } };
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
