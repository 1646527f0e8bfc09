// beam dashboard: the small script on top of server-rendered pages. It keeps
// the tunnel list live (SSE), draws charts from the JSON API (uPlot), copies
// secrets to the clipboard and asks before destructive posts. Every page
// works without it.
"use strict";
(function () {
  const $ = (sel, root) => (root || document).querySelector(sel);
  const $$ = (sel, root) => Array.from((root || document).querySelectorAll(sel));

  function banner(text) {
    const b = $("#offline");
    if (!b) return;
    b.textContent = text || "";
    b.hidden = !text;
  }

  // Copy buttons: data-copy names the element whose text is copied.
  function copies() {
    $$("[data-copy]").forEach((btn) => {
      btn.addEventListener("click", async () => {
        const src = document.getElementById(btn.dataset.copy);
        if (!src) return;
        try {
          await navigator.clipboard.writeText(src.textContent.trim());
          btn.textContent = "Copied";
        } catch (_) {
          // No clipboard (plain HTTP on another host): select it instead.
          const r = document.createRange();
          r.selectNodeContents(src);
          const s = window.getSelection();
          s.removeAllRanges();
          s.addRange(r);
          btn.textContent = "Selected: press Ctrl+C";
        }
        setTimeout(() => { btn.textContent = "Copy"; }, 2000);
      });
    });
  }

  // Destructive forms ask first (the server does not depend on it).
  function confirms() {
    document.addEventListener("submit", (ev) => {
      const f = ev.target;
      if (f.dataset && f.dataset.confirm && !window.confirm(f.dataset.confirm)) {
        ev.preventDefault();
      }
    });
  }

  // The password reset mail links to /reset#token=…: the fragment never
  // reaches the server; copy it into the form.
  function resetToken() {
    const input = $("#reset-form #token");
    const m = /[#&]token=([^&]+)/.exec(location.hash);
    if (input && m) {
      input.value = decodeURIComponent(m[1]);
      history.replaceState(null, "", location.pathname);
      const pw = $("#password");
      if (pw) pw.focus();
    }
  }

  // The live tunnel list.
  function fillRow(tr, t) {
    tr.dataset.id = t.id;
    for (const el of $$("[data-f]", tr)) {
      const f = el.dataset.f;
      if (f in t) el.textContent = t[f];
    }
    const name = $("[data-f=name]", tr);
    if (name) name.href = "/tunnels/" + t.id;
    const url = $("[data-f=url]", tr);
    if (url) url.href = t.url;
    const st = $("[data-f=status]", tr);
    if (st) st.className = "status " + t.status;
    for (const form of $$("form[data-action]", tr)) {
      form.action = "/tunnels/" + t.id + "/" + form.dataset.action;
    }
    for (const form of $$("form[data-show]", tr)) {
      form.hidden = (form.dataset.show === "paused") !== t.paused;
    }
  }

  function liveTunnels() {
    const table = $("#tunnels[data-live]");
    if (!table || !window.EventSource) return;
    const body = $("tbody", table);
    const tpl = $("#tunnel-row");
    const empty = $("#tunnels-empty");
    const state = $("#live-state");
    const sync = () => { if (empty) empty.hidden = body.rows.length > 0; };
    const es = new EventSource("/events/tunnels");
    es.onopen = () => { banner(""); if (state) state.textContent = "Live"; };
    es.onerror = () => {
      if (es.readyState === EventSource.CLOSED) return;
      banner("The server cannot be reached right now; the list will catch up when it answers again.");
      if (state) state.textContent = "Reconnecting…";
    };
    es.addEventListener("tunnel", (ev) => {
      const t = JSON.parse(ev.data);
      let tr = $('tr[data-id="' + t.id + '"]', body);
      if (!tr) {
        tr = tpl.content.firstElementChild.cloneNode(true);
        body.prepend(tr);
      }
      fillRow(tr, t);
      sync();
    });
    es.addEventListener("gone", (ev) => {
      const tr = $('tr[data-id="' + ev.data + '"]', body);
      if (tr) tr.remove();
      sync();
    });
    es.addEventListener("expired", () => {
      es.close();
      banner("Your session has ended. Sign in again to keep the list live.");
      if (state) state.innerHTML = '<a href="/login?reason=expired">Sign in again</a>';
    });
    es.addEventListener("trouble", (ev) => {
      if (state) state.textContent = "The list could not be refreshed: " + ev.data;
    });
  }

  // Charts from /api/analytics/.../series.
  const KINDS = {
    requests: { series: [["requests", "Requests", "--accent"]], unit: "" },
    errors: { series: [["errors", "Errors (5xx)", "--err"]], unit: "" },
    bytes: { series: [["bytes_out", "Out", "--accent"], ["bytes_in", "In", "--ok"]], unit: "B" },
    latency: { series: [["p50_ms", "p50", "--ok"], ["p95_ms", "p95", "--warn"]], unit: "ms" },
  };

  function human(v, unit) {
    if (v == null) return "—";
    if (unit === "B") {
      const u = ["B", "kB", "MB", "GB", "TB"];
      let i = 0;
      while (v >= 1000 && i < u.length - 1) { v /= 1000; i++; }
      return (i ? v.toFixed(1) : v) + " " + u[i];
    }
    if (unit === "ms") return v.toFixed(1) + " ms";
    return String(Math.round(v));
  }

  async function chart(el) {
    const kind = KINDS[el.dataset.chart];
    if (!kind) return;
    let data;
    try {
      const r = await fetch(el.dataset.src, { credentials: "same-origin", headers: { Accept: "application/json" } });
      if (r.status === 401) {
        el.innerHTML = '<p class="note">Your session has ended. <a href="/login?reason=expired">Sign in again</a>.</p>';
        return;
      }
      const body = await r.json();
      if (!r.ok) throw new Error(body.error ? body.error.message : "HTTP " + r.status);
      data = body;
    } catch (e) {
      el.innerHTML = "";
      const p = document.createElement("p");
      p.className = "note";
      p.textContent = "This chart could not be loaded: " + (e.message || "the server did not answer") + ". Reload to try again.";
      el.appendChild(p);
      return;
    }
    const xs = data.points.map((p) => p.t / 1000);
    const cols = kind.series.map(([f]) => data.points.map((p) => p[f]));
    // What the chart was given, for tests and for anyone curious.
    el.beamSeries = { step: data.step, totals: data.totals, points: data.points.length,
      fields: kind.series.map(([f]) => f), values: cols };
    el.dataset.points = String(data.points.length);
    el.dataset.total = String(cols[0].reduce((a, b) => a + (b || 0), 0));
    const css = getComputedStyle(document.documentElement);
    const fg = css.getPropertyValue("--muted").trim();
    const grid = css.getPropertyValue("--line").trim();
    const axis = { stroke: fg, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid } };
    const opts = {
      width: Math.max(260, el.clientWidth),
      height: 200,
      legend: { show: true },
      cursor: { drag: { x: false, y: false } },
      axes: [axis, Object.assign({}, axis, { size: 60, values: (u, vals) => vals.map((v) => human(v, kind.unit)) })],
      series: [{}].concat(kind.series.map(([, label, color]) => ({
        label, stroke: css.getPropertyValue(color).trim(), width: 2, spanGaps: false,
        // Sampled latency has gaps: a lone value is a dot, not nothing.
        points: { show: kind.unit === "ms" ? true : undefined, size: 5 },
        value: (u, v) => human(v, kind.unit),
      }))),
    };
    el.innerHTML = "";
    if (!window.uPlot) {
      el.textContent = "The chart library did not load.";
      return;
    }
    const plot = new window.uPlot(opts, [xs].concat(cols), el);
    if (window.ResizeObserver) {
      new ResizeObserver(() => plot.setSize({ width: Math.max(260, el.clientWidth), height: 200 })).observe(el);
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    copies();
    confirms();
    resetToken();
    liveTunnels();
    $$(".chart[data-chart]").forEach(chart);
  });
})();
