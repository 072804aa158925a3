// The plugsconc dashboard. Every string from the host or a plugin goes into the page through
// textContent or option.text, never innerHTML: log messages are a plugin's own words.
"use strict";
(() => {
  const KEY = "plugsconc.token";
  const LEVELS = ["trace", "debug", "info", "warning", "error", "fatal"];
  const MAX_LOGS = 500;
  const $ = (id) => document.getElementById(id);
  const el = (tag, text, cls) => {
    const e = document.createElement(tag);
    if (text !== undefined) e.textContent = String(text);
    if (cls) e.className = cls;
    return e;
  };
  let token = sessionStorage.getItem(KEY) || "";
  let plugins = [];
  let history = {};
  let selected = "";
  let chart;
  let logs = [];
  let rendered = false;
  let streamAbort;

  function headers(extra) {
    const h = Object.assign({}, extra);
    if (token) h.authorization = "Bearer " + token;
    return h;
  }

  function askToken(message) {
    if (streamAbort) streamAbort.abort();
    $("app").hidden = true;
    $("login").hidden = false;
    $("login-error").textContent = message || "";
    $("status").textContent = "token needed";
    $("status").className = "down";
    plugins = [];
    logs = [];
    $("plugins").tBodies[0].replaceChildren();
    $("logs").tBodies[0].replaceChildren();
    $("token").focus();
  }

  $("login").addEventListener("submit", (ev) => {
    ev.preventDefault();
    token = $("token").value.trim();
    $("token").value = "";
    sessionStorage.setItem(KEY, token);
    connect();
  });

  // The stream is read with fetch(), not EventSource: EventSource cannot send the
  // Authorization header, and a token in the URL would end up in logs and history.
  async function connect() {
    if (streamAbort) streamAbort.abort();
    const abort = new AbortController();
    streamAbort = abort;
    let response;
    try {
      response = await fetch("/dashboard/events", { headers: headers(), signal: abort.signal });
    } catch {
      return retry(abort);
    }
    if (response.status === 401) {
      const had = token !== "";
      sessionStorage.removeItem(KEY);
      token = "";
      return askToken(had ? "the token was refused" : "");
    }
    if (!response.ok || !response.body) return retry(abort);
    $("login").hidden = true;
    $("app").hidden = false;
    $("status").textContent = "live";
    $("status").className = "live";
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          dispatch(buffer.slice(0, end));
          buffer = buffer.slice(end + 2);
        }
      }
    } catch { /* aborted or the connection dropped */ }
    retry(abort);
  }

  function retry(abort) {
    if (abort.signal.aborted || streamAbort !== abort) return;
    $("status").textContent = "disconnected, reconnecting…";
    $("status").className = "down";
    setTimeout(() => streamAbort === abort && connect(), 2000);
  }

  function dispatch(block) {
    let event = "message";
    let data = "";
    for (const line of block.split("\n")) {
      if (line.startsWith("event: ")) event = line.slice(7);
      else if (line.startsWith("data: ")) data += line.slice(6);
    }
    if (!data) return;
    const payload = JSON.parse(data);
    if (event === "snapshot") onSnapshot(payload);
    else if (event === "log") onLogs(payload);
    else if (event === "change") onChange(payload);
    else if (event === "logs-off") {
      $("logs-off").hidden = false;
      $("logs-off").textContent = "No log records: " + payload.reason;
    }
  }

  const fmt = (n, digits) => n === null || n === undefined ? "-" : Number(n).toFixed(digits);
  const last = (name) => (history[name] || []).at(-1);

  function onSnapshot(s) {
    plugins = s.plugins;
    history = s.history;
    if (!selected || !plugins.some((p) => p.name === selected)) {
      selected = plugins[0] ? plugins[0].name : "";
    }
    renderPlugins();
    renderSelects();
    renderChart();
    if (!rendered && plugins.length > 0) {
      rendered = true;
      performance.mark("plugsconc-first-render");
    }
  }

  function renderPlugins() {
    const rows = plugins.map((p) => {
      const tr = el("tr");
      tr.dataset.plugin = p.name;
      if (p.name === selected) tr.className = "selected";
      const m = last(p.name);
      const cells = [
        [p.name, "name"],
        [p.state, "state state-" + p.state],
        [p.health, "health"],
        [p.version, "version"],
        [p.pids.length ? p.pids.join(", ") : "-", "pid"],
        [p.instances, "instances"],
        [p.restarts, "restarts"],
        [p.breaker, "breaker"],
        [m ? fmt(m.callsPerSec, 1) : "-", "rate"],
        [m ? fmt(m.errorRate * 100, 1) + " %" : "-", "errors"],
        [m && m.p50 !== null ? fmt(m.p50, 2) + " ms" : "-", "p50"],
        [m && m.p99 !== null ? fmt(m.p99, 2) + " ms" : "-", "p99"],
        [p.error ? "error: " + p.error : grantsInWords(p.grants), "grants"],
      ];
      for (const [text, cls] of cells) tr.append(el("td", text, cls));
      tr.addEventListener("click", () => {
        selected = p.name;
        renderPlugins();
        renderChart();
      });
      return tr;
    });
    $("plugins").tBodies[0].replaceChildren(...rows);
  }

  const VERBS = {
    read: "reads",
    write: "writes",
    net: "connects to",
    env: "sees env",
    process: "runs",
  };
  function grantsInWords(grants) {
    if (!grants || grants === "none") return "no access beyond its own code";
    return grants.split("; ").map((part) => {
      const i = part.indexOf(": ");
      if (i < 0) return part;
      const verb = VERBS[part.slice(0, i)] || part.slice(0, i);
      return verb + " " + part.slice(i + 2);
    }).join("; ");
  }

  function fill(select, values, keepFirst) {
    const current = select.value;
    const first = keepFirst ? [...select.options].slice(0, 1) : [];
    const options = values.map((v) => {
      const o = el("option", v);
      o.value = v;
      return o;
    });
    select.replaceChildren(...first, ...options);
    if ([...select.options].some((o) => o.value === current)) select.value = current;
  }

  function renderSelects() {
    const names = plugins.map((p) => p.name);
    fill($("call-plugin"), names, false);
    fill($("log-plugin"), names, true);
    renderMethods();
  }

  function renderMethods() {
    const p = plugins.find((x) => x.name === $("call-plugin").value);
    fill($("call-method"), p ? p.methods : [], false);
  }
  $("call-plugin").addEventListener("change", renderMethods);

  function renderChart() {
    $("chart-plugin").textContent = selected || "-";
    if (typeof uPlot === "undefined") return;
    const samples = history[selected] || [];
    const data = [
      samples.map((s) => s.t / 1000),
      samples.map((s) => s.callsPerSec),
      samples.map((s) => s.p50),
      samples.map((s) => s.p99),
    ];
    if (!chart) {
      chart = new uPlot(
        {
          width: Math.min(900, document.body.clientWidth - 40),
          height: 180,
          series: [
            {},
            { label: "calls/s", stroke: "#3366cc", scale: "rate" },
            { label: "p50 ms", stroke: "#2e9d55", scale: "ms" },
            { label: "p99 ms", stroke: "#cc4b37", scale: "ms" },
          ],
          axes: [{}, { scale: "rate" }, { scale: "ms", side: 1, grid: { show: false } }],
        },
        data,
        $("chart"),
      );
    } else chart.setData(data);
  }

  function onLogs(entries) {
    logs = logs.concat(entries).slice(-MAX_LOGS);
    renderLogs();
  }

  function renderLogs() {
    const plugin = $("log-plugin").value;
    const min = LEVELS.indexOf($("log-level").value);
    const rows = [];
    for (let i = logs.length - 1; i >= 0; i--) {
      const r = logs[i];
      if (plugin && r.plugin !== plugin) continue;
      if (LEVELS.indexOf(r.level) < min) continue;
      const tr = el("tr", undefined, "level-" + r.level);
      tr.append(
        el("td", new Date(r.ts).toLocaleTimeString(), "time"),
        el("td", r.level, "level"),
        el("td", r.plugin || r.category, "plugin"),
        el("td", r.message, "message"),
      );
      rows.push(tr);
    }
    $("logs").tBodies[0].replaceChildren(...rows);
  }
  $("log-plugin").addEventListener("change", renderLogs);
  $("log-level").addEventListener("change", renderLogs);

  function onChange(c) {
    const li = el(
      "li",
      new Date(c.t).toLocaleTimeString() + " " + (c.plugin || "?") + ": " +
        c.outcome + (c.reason ? " (" + c.reason + ")" : ""),
    );
    li.dataset.outcome = c.outcome;
    $("changes").prepend(li);
  }

  // Same CSRF protections as any API client: JSON content type and the bearer token.
  $("call").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const out = $("call-result");
    const plugin = $("call-plugin").value;
    const method = $("call-method").value;
    let params;
    try {
      params = JSON.parse($("call-params").value || "{}");
    } catch (e) {
      out.textContent = "params are not JSON: " + e.message;
      return;
    }
    out.textContent = "calling…";
    try {
      const r = await fetch(
        "/v1/plugins/" + encodeURIComponent(plugin) + "/" + encodeURIComponent(method),
        {
          method: "POST",
          headers: headers({ "content-type": "application/json" }),
          body: JSON.stringify(params),
        },
      );
      const body = await r.json();
      out.textContent = r.status + " " + JSON.stringify(body.error ?? body.result, null, 2);
      out.dataset.status = String(r.status);
      if (r.status === 401) askToken("the token was refused");
    } catch (e) {
      out.textContent = "failed: " + e.message;
    }
  });

  connect();
})();
