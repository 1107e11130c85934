// gridwatch operator dashboard: sign-in, headline figures, live outage list, crews and
// dispatch, feeder view (tree, or map where devices have positions) and outage detail.
// Plain ES modules served by gridwatch; no build step, no CDN.
import { h, clear, $ } from "./dom.js";
import { ApiError, makeApi } from "./api.js";
import { startLive } from "./live.js";
import { createTree } from "./tree.js";
import { createMap } from "./map.js";
import { renderDetail } from "./detail.js";
import { createCrewBoard } from "./crews.js";
import { STATE_LABELS, setOffset, fmtTime, fmtClock, localDay, customersOut } from "./format.js";

const TOKEN_KEY = "gridwatch.token";
const LIST_LIMIT = 200;
// Crew reports change no outage row, so no live event announces another operator's: poll.
const CREW_POLL_MS = 30000;
const FILTERS = {
  active: { active: true },
  predicted: { state: "predicted" },
  confirmed: { state: "confirmed" },
  closed: { active: false },
  all: {},
};
// Form fields kept across a live re-render of the detail, so typing is never lost.
const KEPT_FIELDS = ["override-etr", "override-reason", "action-reason"];
const KEPT_TEXT = ["action-result", "action-error"];

const config = { api_base: "/api/v1", local_utc_offset_h: 7, now: new Date().toISOString() };
let loadedAtMs = Date.now();
let api = null;
let live = null;
let tree = null;
let map = null;
let crews = null;
let view = "tree";
let selectedId = null;
let refreshTimer = null;
let pendingDetail = false;
let changed = new Set();

const serverNowMs = () => Date.parse(config.now) + (Date.now() - loadedAtMs);
const serverNowIso = () => new Date(serverNowMs()).toISOString();
const token = () => sessionStorage.getItem(TOKEN_KEY);

function showError(err) {
  $("#app-error").textContent = err ? err.message || String(err) : "";
}

function signOut(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  if (live) live.stop();
  live = null;
  // A refresh still waiting would ask the API without a token (401s after signing out).
  if (refreshTimer) clearTimeout(refreshTimer);
  refreshTimer = null;
  pendingDetail = false;
  $("#app").hidden = true;
  $("#signout").hidden = true;
  $("#login").hidden = false;
  $("#login-error").textContent = message || "";
  $("#token").focus();
}

function handle(err) {
  if (err instanceof ApiError && err.status === 401) signOut("Your token is no longer valid.");
  else showError(err);
}

async function loadConfig() {
  const response = await fetch("config.json", { cache: "no-store" });
  if (response.ok) Object.assign(config, await response.json());
  loadedAtMs = Date.now();
  setOffset(config.local_utc_offset_h);
}

// --- headline figures ---------------------------------------------------------------------
async function refreshHeadline() {
  const today = localDay(serverNowMs());
  const tomorrow = localDay(serverNowMs() + 86400e3);
  const [summary, reliability] = await Promise.all([
    api.get("/public/summary"),
    api.get("/reliability", { start: today, end: tomorrow }),
  ]);
  $("#fig-customers-out").textContent = summary.customers_out.toLocaleString("en");
  $("#fig-active-outages").textContent = summary.active_outages.toLocaleString("en");
  $("#fig-saidi").textContent = reliability.all_days.saidi_min.toFixed(2);
}

// Today's times as HH:MM, others with their date (an ETR may fall tomorrow).
function shortTime(iso) {
  const full = fmtTime(iso);
  return full.slice(0, 10) === localDay(serverNowMs()) ? fmtClock(iso) : full.slice(5);
}

// --- outage list --------------------------------------------------------------------------
function row(o) {
  const selected = o.outage_id === selectedId;
  const tr = h("tr", {
    dataset: { outageId: o.outage_id, state: o.state },
    class: [selected ? "selected" : "", changed.has(o.outage_id) ? "flash" : ""].join(" ").trim() || null,
    "aria-selected": selected ? "true" : null,
  },
  h("td", {}, h("span", { class: `badge b-${o.state}` }, STATE_LABELS[o.state] || o.state)),
  h("td", {}, h("button", {
    type: "button", class: "link",
    "aria-label": `Outage ${o.outage_id} on ${o.device_id}, ${STATE_LABELS[o.state]}`,
    onclick: () => openOutage(o.outage_id),
  }, `#${o.outage_id} ${o.device_id}`)),
  h("td", {}, o.zone),
  h("td", { class: "num", dataset: { field: "customers-out" } }, customersOut(o)),
  h("td", {}, h("time", { datetime: o.started_at }, fmtTime(o.started_at))),
  h("td", { dataset: { field: "etr" } }, o.etr && o.etr.p50 ? shortTime(o.etr.p50) : "–"));
  return tr;
}

async function refreshList() {
  const filter = FILTERS[$("#filter").value] || FILTERS.active;
  const page = await api.get("/outages", { ...filter, limit: LIST_LIMIT });
  const body = clear($("#outages tbody"));
  for (const o of page.items) body.append(row(o));
  $("#outages-empty").hidden = page.items.length > 0;
  changed = new Set();
  const active = filter.active === true ? page.items : (await api.get("/outages", { active: true, limit: 500 })).items;
  map.refresh(active);
  await tree.refresh(active);
}

// --- feeder view: tree or map -------------------------------------------------------------
async function showView(name) {
  view = name;
  const isMap = name === "map";
  $("#view-tree").setAttribute("aria-pressed", String(!isMap));
  $("#view-map").setAttribute("aria-pressed", String(isMap));
  $("#tree").hidden = isMap;
  $("#tree-legend").hidden = isMap;
  $("#map").hidden = !isMap;
  if (isMap) await map.show(); // geometry is re-read on each opening (topology may change)
}

async function checkMap() {
  const available = await map.available();
  $("#view-map").hidden = !available;
  $("#map-none").hidden = available;
  if (!available && view === "map") await showView("tree");
}

async function reveal(deviceId) {
  if (view === "map" && map.has(deviceId)) { map.reveal(deviceId); return; }
  if (view === "map") await showView("tree");
  await tree.reveal(deviceId);
}

// --- detail -------------------------------------------------------------------------------
async function showDetail(keep) {
  if (selectedId === null) return;
  const container = $("#detail");
  const kept = {};
  if (keep) {
    for (const id of KEPT_FIELDS) { const el = document.getElementById(id); if (el) kept[id] = el.value; }
    for (const id of KEPT_TEXT) { const el = document.getElementById(id); if (el) kept[id] = el.textContent; }
  }
  const focused = keep && document.activeElement ? document.activeElement.id : null;
  const outage = await api.get(`/outages/${selectedId}`);
  renderDetail(container, outage, {
    api, serverNowIso,
    onChanged: () => scheduleRefresh(true),
    onReveal: (deviceId) => reveal(deviceId).catch(handle),
  });
  for (const [id, value] of Object.entries(kept)) {
    const el = document.getElementById(id);
    if (!el) continue;
    if (KEPT_FIELDS.includes(id)) el.value = value; else el.textContent = value;
  }
  if (focused) { const el = document.getElementById(focused); if (el) el.focus(); }
}

async function openOutage(outageId) {
  selectedId = outageId;
  for (const tr of document.querySelectorAll("#outages tbody tr")) {
    const on = Number(tr.dataset.outageId) === outageId;
    tr.classList.toggle("selected", on);
    if (on) tr.setAttribute("aria-selected", "true"); else tr.removeAttribute("aria-selected");
  }
  try {
    await showDetail(false);
    $("#detail").focus();
  } catch (err) {
    handle(err);
  }
}

// --- live updates -------------------------------------------------------------------------
// Events arrive in bursts during a storm: coalesce them into one refresh.
function scheduleRefresh(withDetail) {
  pendingDetail = pendingDetail || withDetail;
  if (refreshTimer) return;
  refreshTimer = setTimeout(async () => {
    refreshTimer = null;
    if (!token()) return; // signed out meanwhile
    const detail = pendingDetail;
    pendingDetail = false;
    try {
      await Promise.all([
        refreshList(), refreshHeadline(), crews.refresh(), detail ? showDetail(true) : null,
      ]);
      showError(null);
    } catch (err) {
      handle(err);
    }
  }, 250);
}

function onOutage(event) {
  changed.add(event.outage_id);
  scheduleRefresh(event.outage_id === selectedId);
}

function setLive(state) {
  const el = $("#live");
  el.dataset.state = state;
  el.textContent = { live: "Live", reconnecting: "Reconnecting…", off: "Not connected" }[state];
}

async function start() {
  $("#login").hidden = true;
  $("#app").hidden = false;
  $("#signout").hidden = false;
  api = makeApi(config.api_base, token);
  tree = createTree($("#tree"), { api, onOpenOutage: openOutage, onError: handle });
  map = createMap($("#map"), { api, onOpenOutage: openOutage, onError: handle });
  crews = createCrewBoard($("#crews-card"), {
    api, shortTime, onOpenOutage: openOutage, onError: handle,
    onChanged: (outageId) => scheduleRefresh(outageId === selectedId),
  });
  await showView("tree"); // a new sign-in starts on the tree (the map loads when asked for)
  try {
    await Promise.all([refreshList(), refreshHeadline(), crews.refresh(), checkMap()]);
  } catch (err) {
    handle(err);
    if (err instanceof ApiError && err.status === 401) return;
  }
  live = startLive({
    api, base: config.api_base, onOutage,
    onResync: () => scheduleRefresh(true),
    onStatus: setLive,
    onUnauthorized: () => signOut("Your token is no longer valid."),
  });
}

async function signIn(event) {
  event.preventDefault();
  const value = $("#token").value.trim();
  const error = $("#login-error");
  if (!value) { error.textContent = "Paste your API token."; return; }
  try {
    await makeApi(config.api_base, () => value).get("/outages", { limit: 1 });
  } catch (err) {
    error.textContent = err.message;
    return;
  }
  sessionStorage.setItem(TOKEN_KEY, value);
  $("#token").value = "";
  error.textContent = "";
  await start();
}

async function main() {
  await loadConfig().catch(() => undefined);
  $("#login-form").addEventListener("submit", signIn);
  $("#signout").addEventListener("click", () => signOut(""));
  $("#filter").addEventListener("change", () => refreshList().catch(handle));
  $("#view-tree").addEventListener("click", () => showView("tree").catch(handle));
  $("#view-map").addEventListener("click", () => showView("map").catch(handle));
  // Headline SAIDI moves with time even when no outage changes.
  setInterval(() => { if (live) refreshHeadline().catch(handle); }, 60000);
  setInterval(() => { if (live && crews) crews.refresh().catch(handle); }, CREW_POLL_MS);
  if (token()) await start(); else signOut("");
}

main();
