/**
 * The permission audit and the audit trail seen through the HTTP gateway: the permission
 * report in `GET /v1/plugins/{name}`, the metrics, and bad tokens as audit events.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { Gateway } from "../src/server/mod.ts";
import { FIXTURE_PLUGINS, makeHome, waitFor } from "./_helpers.ts";

const TOKEN = "audit-test-token-0123456789abcdef";

Deno.test("GET /v1/plugins/{name} reports used, unused and denied permissions; bad tokens are audited", async () => {
  await using home = await makeHome({ watcher: { enabled: false }, server: { token: TOKEN } });
  await home.addPlugin(join(FIXTURE_PLUGINS, "audit_reader"), { as: "audit-reader" });
  await using host = await home.startHost();
  await using gateway = await Gateway.start(host, { listen: "127.0.0.1:0" });
  const auth = { authorization: `Bearer ${TOKEN}` };
  assert.equal(await host.call("audit-reader", "readA"), "a\n");
  assert.equal(await host.call("audit-reader", "tryHostname"), "NotCapable");
  // Totals reach the trail once a second while the plugin runs.
  const view = async () => {
    const res = await fetch(`${gateway.url}/v1/plugins/audit-reader`, { headers: auth });
    return await res.json();
  };
  assert.ok(await waitFor(async () => (await view()).permissions?.denied.length === 1, 10_000));
  const { permissions } = await view();
  assert.deepEqual(
    permissions.grants.map((g: { declared: string; used: boolean }) => [g.declared, g.used]),
    [["./data/a.txt", true], ["./data/b.txt", false]],
  );
  assert.equal(permissions.denied[0].value, "/etc/hostname");
  // The list stays cheap: no permission report per plugin.
  const list = await (await fetch(`${gateway.url}/v1/plugins`, { headers: auth })).json();
  assert.equal(list.plugins[0].permissions, undefined);

  const metrics = await (await fetch(`${gateway.url}/metrics`, { headers: auth })).text();
  assert.match(
    metrics,
    /plugsconc_permission_checks_total\{plugin="audit-reader",permission="read",outcome="denied"\} 1/,
  );

  const bad = await fetch(`${gateway.url}/v1/plugins`, {
    headers: { authorization: "Bearer nope" },
  });
  await bad.body?.cancel();
  assert.equal(bad.status, 401);
  const failures = host.audit!.query({ kind: "gateway.auth_failed" });
  assert.equal(failures.length, 1);
  assert.equal(JSON.parse(failures[0]!.detail).reason, "invalid");
  assert.equal(host.audit!.verify().ok, true);
});
