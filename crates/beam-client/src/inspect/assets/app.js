// beam inspector: the live list, filters, detail view, replay and export.
// No framework and no inline script (the page's Content-Security-Policy
// allows only this file); everything it reads comes from /api on this host.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { items: [], selected: null, detail: null };

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v; else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c instanceof Node ? c : String(c));
  return e;
}

function statusClass(item) {
  if (item.error && !item.status) return "serr";
  if (!item.status) return "";
  return "s" + String(item.status)[0];
}

function matches(item) {
  const m = $("f-method").value, s = $("f-status").value, p = $("f-path").value.trim();
  if (m && item.method !== m) return false;
  if (s === "err" && !(item.error || (item.status || 0) >= 500)) return false;
  if (s && s !== "err" && String(item.status || "")[0] !== s) return false;
  if (p && !item.path.toLowerCase().includes(p.toLowerCase())) return false;
  return true;
}

function row(item) {
  const time = new Date(item.started_at).toLocaleTimeString();
  const path = el("td", { class: "path" }, item.path);
  if (item.replay_of) path.append(el("span", { class: "replay-mark" }, "↻ replay of #" + item.replay_of));
  if (item.websocket) path.append(el("span", { class: "replay-mark" }, "WebSocket"));
  const status = item.status ? String(item.status) : "failed";
  const tr = el("tr", { tabindex: "-1", "data-id": String(item.id), "aria-selected": String(item.id === state.selected) },
    el("td", {}, time), el("td", {}, item.method), path,
    el("td", { class: statusClass(item), title: item.error || "" }, status),
    el("td", {}, item.duration_ms.toFixed(1) + " ms"));
  tr.addEventListener("click", () => select(item.id, true));
  return tr;
}

function render() {
  const body = $("list").tBodies[0];
  const shown = state.items.filter(matches);
  body.replaceChildren(...shown.map(row));
  $("empty").hidden = state.items.length > 0;
  const rows = body.rows;
  const sel = [...rows].find((r) => r.dataset.id === String(state.selected)) || rows[0];
  if (sel) sel.tabIndex = 0;
}

async function api(path, opts) {
  const r = await fetch(path, opts);
  const text = await r.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch (_) { /* not JSON */ }
  if (!r.ok) throw new Error((json && json.error) || r.status + " " + r.statusText);
  return json;
}

async function load() {
  state.items = await api("/api/summary?limit=500");
  render();
}

function connect() {
  const es = new EventSource("/api/requests/events");
  es.onopen = () => { $("live").textContent = "live"; $("live").classList.add("on"); load().catch(note); };
  es.onerror = () => { $("live").textContent = "reconnecting…"; $("live").classList.remove("on"); };
  es.addEventListener("request", (e) => {
    const item = JSON.parse(e.data);
    if (state.items.some((i) => i.id === item.id)) return;
    state.items.unshift(item);
    if (state.items.length > 500) state.items.pop();
    render();
  });
  es.addEventListener("clear", () => { state.items = []; render(); showDetail(null); });
  es.addEventListener("reload", () => load().catch(note));
}

function note(msg, isError) {
  const n = $("d-note");
  n.textContent = msg instanceof Error ? msg.message : msg;
  n.classList.toggle("error", !!isError || msg instanceof Error);
}

async function select(id, focus) {
  state.selected = id;
  for (const r of $("list").tBodies[0].rows) {
    const on = r.dataset.id === String(id);
    r.setAttribute("aria-selected", String(on));
    r.tabIndex = on ? 0 : -1;
    if (on && focus) r.focus();
  }
  try {
    showDetail(await api("/api/requests/" + id));
  } catch (e) {
    showDetail(null);
    note(e, true);
  }
}

function headerRows(table, headers) {
  table.tBodies[0].replaceChildren(...headers.map(([n, v]) => el("tr", {}, el("td", {}, n), el("td", {}, v))));
}

function header(msg, name) {
  const h = msg.headers.find(([n]) => n.toLowerCase() === name);
  return h ? h[1] : "";
}

function fromBase64(b64) {
  const s = atob(b64 || "");
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

function hexdump(bytes) {
  const lines = [];
  for (let i = 0; i < bytes.length; i += 16) {
    const chunk = bytes.slice(i, i + 16);
    const hex = [...chunk].map((b) => b.toString(16).padStart(2, "0")).join(" ");
    const text = [...chunk].map((b) => (b >= 32 && b < 127 ? String.fromCharCode(b) : ".")).join("");
    lines.push(i.toString(16).padStart(8, "0") + "  " + hex.padEnd(48) + "  " + text);
  }
  return lines.join("\n");
}

// The body shown by its content type: pretty JSON, form fields, text or hex.
function bodyText(msg) {
  const type = header(msg, "content-type").toLowerCase();
  let text = msg.decoded !== undefined ? msg.decoded : msg.body;
  if (text === undefined) {
    const b64 = msg.decoded_base64 !== undefined ? msg.decoded_base64 : msg.body_base64;
    return { kind: "hex", text: hexdump(fromBase64(b64)) };
  }
  if (text === "") return { kind: "empty", text: "" };
  if (type.includes("json") || /^\s*[[{]/.test(text)) {
    try { return { kind: "JSON", text: JSON.stringify(JSON.parse(text), null, 2) }; } catch (_) { /* as text */ }
  }
  if (type.includes("application/x-www-form-urlencoded")) {
    const lines = [];
    for (const [k, v] of new URLSearchParams(text)) lines.push(k + " = " + v);
    return { kind: "form", text: lines.join("\n") };
  }
  return { kind: "text", text };
}

function showBody(msg, pre, meta) {
  const b = bodyText(msg);
  pre.textContent = b.text;
  pre.hidden = b.kind === "empty";
  let m = b.kind === "empty" ? "no body" : b.kind + ", " + msg.size + " bytes";
  if (msg.decoded !== undefined || msg.decoded_base64 !== undefined) m += " (" + header(msg, "content-encoding") + ", shown decompressed)";
  if (msg.truncated) m += " — truncated: the inspector kept the first part of " + msg.size + " bytes";
  meta.textContent = m;
}

function showDetail(d) {
  state.detail = d;
  $("detail").hidden = !d;
  $("edit-form").hidden = true;
  if (!d) return;
  note(d.error ? "Failed: " + d.error : "", !!d.error);
  $("d-title").textContent = d.method + " " + d.path + (d.status ? " → " + d.status : "");
  $("export-one").href = "/api/requests/" + d.id + "/har";
  const t = $("d-timing");
  t.replaceChildren();
  const add = (k, v) => { if (v !== null && v !== undefined && v !== "") t.append(el("dt", {}, k), el("dd", {}, v)); };
  add("Started", new Date(d.started_at).toLocaleString());
  add("First byte", d.first_byte_ms !== null ? d.first_byte_ms.toFixed(2) + " ms" : "");
  add("Total", d.duration_ms.toFixed(2) + " ms");
  add("Visitor", d.visitor);
  add("Request id", d.request_id);
  add("Replay of", d.replay_of ? "#" + d.replay_of : "");
  add("Sizes", d.request.size + " B in, " + d.response.size + " B out");
  headerRows($("req-headers"), d.request.headers);
  headerRows($("resp-headers"), d.response.headers);
  showBody(d.request, $("req-body"), $("req-meta"));
  showBody(d.response, $("resp-body"), $("resp-meta"));
  $("ws").hidden = !d.websocket;
  if (d.websocket) {
    const w = d.websocket;
    $("ws-meta").textContent = w.up_bytes + " B up, " + w.down_bytes + " B down" + (w.closed ? ", closed" : ", open") +
      (w.frames_dropped ? ", " + w.frames_dropped + " later frames not kept" : "");
    const names = { 0: "cont", 1: "text", 2: "binary", 8: "close", 9: "ping", 10: "pong" };
    $("ws-frames").tBodies[0].replaceChildren(...w.frames.map((f) => el("tr", {},
      el("td", {}, f.at_ms), el("td", {}, f.direction === "up" ? "→ app" : "← app"),
      el("td", {}, names[f.opcode] || f.opcode), el("td", {}, f.size),
      el("td", {}, f.text !== undefined ? f.text : hexdump(fromBase64(f.base64))))));
  }
}

function shellQuote(s) { return "'" + String(s).replace(/'/g, "'\\''") + "'"; }

function curl(d) {
  const host = header(d.request, "host") || "localhost";
  const proto = header(d.request, "x-forwarded-proto") || "http";
  const parts = ["curl", "-X", d.method, shellQuote(proto + "://" + host + d.path)];
  const skip = ["host", "content-length", "connection", "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "x-real-ip", "x-request-id"];
  for (const [n, v] of d.request.headers) if (!skip.includes(n.toLowerCase())) parts.push("-H", shellQuote(n + ": " + v));
  if (d.request.body) parts.push("--data-binary", shellQuote(d.request.body));
  return parts.join(" ");
}

async function replay(changes) {
  const d = state.detail;
  if (!d) return;
  note("Replaying…");
  try {
    const r = await api("/api/requests/" + d.id + "/replay", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(changes || {}),
    });
    note("Replayed as #" + r.id);
    await select(r.id, true);
    note("Replay of #" + d.id + " → #" + r.id);
  } catch (e) {
    note(e, true);
  }
}

function openEdit() {
  const d = state.detail;
  if (!d) return;
  $("edit-method").value = d.method;
  $("edit-path").value = d.path;
  $("edit-headers").value = d.request.headers
    .filter(([n]) => n.toLowerCase() !== "content-length")
    .map(([n, v]) => n + ": " + v).join("\n");
  $("edit-body").value = d.request.body !== undefined ? d.request.body : "";
  $("edit-form").hidden = false;
  $("edit-path").focus();
}

function moveSelection(step) {
  const rows = [...$("list").tBodies[0].rows];
  if (!rows.length) return;
  let i = rows.findIndex((r) => r.dataset.id === String(state.selected));
  i = Math.max(0, Math.min(rows.length - 1, i < 0 ? 0 : i + step));
  select(Number(rows[i].dataset.id), true);
}

function init() {
  for (const id of ["f-method", "f-status", "f-path"]) $(id).addEventListener("input", render);
  $("filters").addEventListener("submit", (e) => e.preventDefault());
  $("clear").addEventListener("click", () => api("/api/requests", { method: "DELETE" }).catch(note));
  $("replay").addEventListener("click", () => replay());
  $("edit-replay").addEventListener("click", openEdit);
  $("edit-cancel").addEventListener("click", () => { $("edit-form").hidden = true; });
  $("edit-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const headers = $("edit-headers").value.split("\n").map((l) => l.trim()).filter(Boolean).map((l) => {
      const i = l.indexOf(":");
      return i < 0 ? [l, ""] : [l.slice(0, i).trim(), l.slice(i + 1).trim()];
    });
    replay({ method: $("edit-method").value, path: $("edit-path").value, headers, body: $("edit-body").value });
  });
  $("copy-curl").addEventListener("click", async () => {
    if (!state.detail) return;
    const text = curl(state.detail);
    try { await navigator.clipboard.writeText(text); note("Copied: " + text); } catch (_) { note(text); }
  });
  $("list").addEventListener("keydown", (e) => {
    if (e.key === "ArrowDown" || e.key === "j") { moveSelection(1); e.preventDefault(); }
    if (e.key === "ArrowUp" || e.key === "k") { moveSelection(-1); e.preventDefault(); }
    if (e.key === "Enter" && e.target.dataset && e.target.dataset.id) select(Number(e.target.dataset.id), true);
  });
  load().catch(note);
  connect();
}

document.addEventListener("DOMContentLoaded", init);
