import assert from "node:assert/strict";
import { PermissionTally } from "./permission_tally.ts";

const grants = {
  read: ["/srv/p/data"],
  write: [],
  net: ["api.example.com:443"],
  env: ["TZ"],
  cwd: "/srv/p",
};
const line = (permission: string, value: string | null) =>
  JSON.stringify({ v: 1, datetime: "2026-12-04T00:46:41Z", permission, value });

Deno.test("PermissionTally decides granted from the grants and resolves relative paths", () => {
  const denied: string[] = [];
  const t = new PermissionTally(grants, {
    onDenied: (e) => denied.push(`${e.permission} ${e.value}`),
  });
  t.addLine(line("read", "data/x.txt"));
  t.addLine(line("read", "/srv/p/data2/y"));
  t.addLine(line("net", "https://api.example.com/"));
  t.addLine(line("net", "api.example.com:443"));
  t.addLine(line("env", null));
  t.addLine(line("sys", "hostname"));
  t.addLine("not json");
  const byKey = Object.fromEntries(
    t.entries().map((e) => [`${e.permission} ${e.value}`, e.granted]),
  );
  assert.deepEqual(byKey, {
    "read /srv/p/data/x.txt": true,
    "read /srv/p/data2/y": false,
    "net api.example.com:443": true,
    "env *": false,
    "sys hostname": false,
  });
  assert.deepEqual(denied, ["read /srv/p/data2/y", "env *", "sys hostname"]);
  assert.equal(t.malformed, 1);
});

Deno.test("PermissionTally keeps at most maxDenied denied pairs and skips lines over its rate", () => {
  let now = 0;
  const t = new PermissionTally(grants, { maxDenied: 3, linesPerSecond: 10, now: () => now });
  for (let i = 0; i < 20; i++) t.addLine(line("read", `/x/${i}`));
  assert.equal(t.entries().length, 3);
  assert.equal(t.deniedOverflow, 17);
  assert.equal(t.skipped, 0); // a burst of 2 s worth (20 lines) passes
  t.addLine(line("read", "/x/0"));
  assert.equal(t.skipped, 1);
  now += 1000;
  t.addLine(line("read", "/x/0"));
  assert.equal(t.skipped, 1);
  assert.equal(t.entries().find((e) => e.value === "/x/0")!.count, 2);
});

Deno.test("PermissionTally.drain() returns increments once", () => {
  const t = new PermissionTally(grants);
  t.addLine(line("env", "TZ"));
  t.addLine(line("env", "TZ"));
  assert.deepEqual(t.drain().map((e) => e.count), [2]);
  assert.deepEqual(t.drain(), []);
  t.addLine(line("env", "TZ"));
  assert.deepEqual(t.drain().map((e) => e.count), [1]);
  assert.equal(t.entries()[0]!.count, 3);
});

Deno.test("PermissionTally reports a denied pair after maxEntries granted pairs, and past maxDenied too", () => {
  const denied: string[] = [];
  const t = new PermissionTally(grants, {
    maxEntries: 10,
    maxDenied: 2,
    onDenied: (e) => denied.push(e.value),
  });
  for (let i = 0; i < 50; i++) t.addLine(line("read", `/srv/p/data/${i}`));
  t.addLine(line("read", "/etc/hostname"));
  t.addLine(line("read", "/etc/passwd"));
  t.addLine(line("read", "/etc/shadow"));
  assert.deepEqual(denied, ["/etc/hostname", "/etc/passwd", "/etc/shadow"]);
  assert.deepEqual(t.gaps(), { overflow: 40, deniedOverflow: 1, skipped: 0, malformed: 0 });
  assert.deepEqual(
    t.entries().filter((e) => !e.granted).map((e) => e.value),
    ["/etc/hostname", "/etc/passwd"],
  );
});

Deno.test("PermissionTally counts lines over its rate as skipped, unexamined", () => {
  const denied: string[] = [];
  const t = new PermissionTally(grants, {
    linesPerSecond: 5,
    now: () => 0,
    onDenied: (e) => denied.push(e.value),
  });
  for (let i = 0; i < 10; i++) t.addLine(line("env", "TZ"));
  t.addLine(line("read", "/etc/hostname"));
  // The denial was never parsed: only the gap tells that something was not examined.
  assert.deepEqual(denied, []);
  assert.deepEqual(t.gaps(), { overflow: 0, deniedOverflow: 0, skipped: 1, malformed: 0 });
});

Deno.test("PermissionTally counts a path under a grant root as granted, a sibling with the root's prefix as denied", () => {
  const t = new PermissionTally({ ...grants, read: ["/srv/p/data", "/"] });
  const only = new PermissionTally(grants);
  for (const x of [t, only]) {
    x.addLine(line("read", "/srv/p/data"));
    x.addLine(line("read", "/srv/p/data/../data/a"));
    x.addLine(line("read", "/srv/p/database"));
  }
  assert.ok(t.entries().every((e) => e.granted));
  assert.deepEqual(
    only.entries().map((e) => [e.value, e.granted]),
    [["/srv/p/data", true], ["/srv/p/data/a", true], ["/srv/p/database", false]],
  );
});
