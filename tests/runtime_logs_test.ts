/**
 * Plugin output as log records, with real plugin processes: stderr lines and `$/log` records,
 * and the caller's log context on a handler's records.
 */
import assert from "node:assert/strict";
import { withContext } from "@logtape/logtape";
import { captureLogs, waitFor } from "./_helpers.ts";
import { homeWith } from "./_runtime.ts";

Deno.test("plugin stderr lines and $/log records become log records of the plugin's category", async () => {
  await using logs = await captureLogs();
  const records = logs.records;
  {
    await using home = await homeWith();
    await using host = await home.startHost();
    await host.call("behave", "stderr", {
      lines: [
        "a plain line",
        "\x1b[31mred\x1b[0m and a bell\x07",
        JSON.stringify({ level: "warn", message: "structured \x1b[2J", request: 17 }),
      ],
    });
    await host.call("behave", "log", {
      level: "warning",
      message: "from the handler",
      fields: { answer: 42 },
    });
    const category = ["plugsconc", "plugin", "behave"];
    const ofPlugin = () => records.filter((r) => r.category.join(".") === category.join("."));
    const find = (text: string) =>
      ofPlugin().find((r) => String(r.properties.message).includes(text));
    assert.ok(
      await waitFor(
        () => ["a plain line", "red", "structured", "from the handler", "via console"].every(find),
        3000,
      ),
      `missing records; got ${JSON.stringify(ofPlugin().map((r) => r.properties))}`,
    );
    for (const r of ofPlugin()) {
      assert.deepEqual(r.category, category);
      assert.equal(r.properties.plugin, "behave");
    }

    const plain = find("a plain line")!;
    assert.equal(plain.level, "info");
    assert.equal(plain.properties.stream, "stderr");

    // Control characters are stored escaped, so a log viewer cannot be driven by a plugin.
    const red = find("red")!;
    assert.equal(red.properties.message, "\\u001b[31mred\\u001b[0m and a bell\\u0007");
    for (const r of ofPlugin()) {
      // deno-lint-ignore no-control-regex -- control characters are exactly what is checked
      assert.doesNotMatch(String(r.properties.message), /[\x00-\x08\x0b-\x1f\x7f]/);
    }

    // A JSON stderr line with level and message is a structured record.
    const structured = find("structured")!;
    assert.equal(structured.level, "warning");
    assert.equal(structured.properties.message, "structured \\u001b[2J");
    assert.equal(structured.properties.request, 17);

    // $/log from ctx.log keeps level and fields; console.log inside the plugin is routed too.
    const logged = find("from the handler")!;
    assert.equal(logged.level, "warning");
    assert.equal(logged.properties.answer, 42);
    assert.equal(logged.properties.method, "log");
    const consoled = find("via console")!;
    assert.equal(consoled.level, "info");
    assert.equal(consoled.properties.source, "console");
    assert.match(String(consoled.properties.message), /via console \{ n: 1 \}/);

    // Every other console method is routed too: none writes to stdout.
    await host.call("behave", "consoleEverything");
    assert.ok(
      await waitFor(
        () => ["{ dir: 1 }", "dirxml", "hits: 1", "group title", "t: "].every(find),
        3000,
      ),
      JSON.stringify(ofPlugin().map((r) => r.properties.message)),
    );
    assert.equal(find("Assertion failed: assert message")?.level, "error");
    assert.equal(host.supervisor("behave")!.process!.stdoutGarbage, 0);
  }
});

Deno.test("a handler's ctx.log records carry the caller's log context (e.g. an HTTP request id)", async () => {
  await using logs = await captureLogs();
  const records = logs.records;
  {
    await using home = await homeWith();
    await using host = await home.startHost();
    await withContext({ requestId: "req-7" }, async () => {
      await host.call("behave", "log", { level: "info", message: "inside the request" });
      await host.call("behave", "consoleLater", { text: "console inside the request" });
    });
    await host.call("behave", "log", { level: "info", message: "outside any request" });
    await host.call("behave", "consoleLater", { text: "console outside any request" });
    const find = (text: string) =>
      records.find((r) =>
        r.properties.source !== "console" && String(r.properties.message).includes(text)
      );
    assert.ok(await waitFor(() => !!find("inside") && !!find("outside"), 3000));
    assert.equal(find("inside the request")!.properties.requestId, "req-7");
    assert.equal(find("outside any request")!.properties.requestId, undefined);
    // console.* inside the handler (after an await) belongs to its call too.
    const consoled = (text: string) =>
      records.find((r) =>
        r.properties.source === "console" && String(r.properties.message).includes(text)
      );
    assert.ok(await waitFor(() => !!consoled("inside") && !!consoled("outside"), 3000));
    assert.equal(consoled("inside the request")!.properties.requestId, "req-7");
    assert.equal(consoled("outside any request")!.properties.requestId, undefined);
    // Two calls in flight: console output after an await cannot be told apart, so it is left
    // untagged rather than given the other call's id.
    await Promise.all([
      withContext(
        { requestId: "req-8" },
        () => host.call("behave", "consoleLater", { text: "concurrent inside" }),
      ),
      host.call("behave", "consoleLater", { text: "concurrent outside" }),
    ]);
    assert.ok(await waitFor(() => !!consoled("concurrent outside"), 3000));
    assert.notEqual(consoled("concurrent outside")!.properties.requestId, "req-8");
  }
});
