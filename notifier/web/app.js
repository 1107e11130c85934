// The customer's page: their outage, its ETR window and their history, in Vietnamese or
// English, from the customer status API (account number + last 4 phone digits, or the
// signed SMS link ?t=); with the link, it can also turn on app alerts (Web Push).
"use strict";

const STATUS_API = "/api/v1/customer/status";
// Push subscription lives with the notifier (/notify/app/api/); the page may be served
// there (relative paths work) or at /status/.
const PUSH_API = location.pathname.includes("/app/") ? "api/" : "/notify/app/api/";
const TIME_ZONE = "Asia/Ho_Chi_Minh"; // the utility's local time, whatever the phone says
const LANG_KEY = "gridwatch.lang";
const REFRESH_MS = 60000;

const TEXT = {
  vi: {
    title: "Tình trạng điện",
    lookup_title: "Tra cứu tình trạng điện",
    account: "Mã khách hàng",
    digits: "4 số cuối điện thoại",
    digits_help: "Số điện thoại đã đăng ký với điện lực.",
    lookup_button: "Xem tình trạng",
    other: "Tra cứu mã khác",
    subscribe: "Nhận thông báo",
    switch_to: "English",
    loading: "Đang tải…",
    for_account: "Mã khách hàng",
    no_outage: "Có điện bình thường",
    no_outage_detail: "Hiện không có sự cố mất điện tại địa chỉ của bạn.",
    outage: "Đang mất điện",
    state: "Trạng thái",
    cause: "Nguyên nhân",
    since: "Mất điện từ",
    window: "Dự kiến có điện lại",
    likely: "khả năng cao nhất",
    no_etr: "Chưa có thời gian dự kiến; chúng tôi sẽ báo khi có.",
    planned: "Lịch cắt điện sắp tới",
    history: "Lịch sử mất điện (12 tháng)",
    no_history: "Không có lần mất điện nào trong 12 tháng qua.",
    back_at: "có điện lại",
    lasted: "kéo dài",
    min: "phút",
    hours: "giờ",
    err_fields: "Nhập mã khách hàng và đúng 4 chữ số cuối của số điện thoại.",
    err_match: "Mã khách hàng và số điện thoại không khớp.",
    err_link: "Liên kết không hợp lệ hoặc đã hết hạn. Hãy tra cứu bằng mã khách hàng.",
    err_many: "Bạn đã thử quá nhiều lần. Vui lòng thử lại sau {m} phút.",
    err_net: "Không kết nối được. Vui lòng thử lại.",
    err_other: "Có lỗi xảy ra. Vui lòng thử lại sau.",
    alerts_on: "Đã bật thông báo.",
    alerts_fail: "Không bật được thông báo.",
    alerts_none: "Trình duyệt này không hỗ trợ thông báo.",
    alerts_off: "Dịch vụ thông báo chưa sẵn sàng.",
  },
  en: {
    title: "Power status",
    lookup_title: "Check your power status",
    account: "Account number",
    digits: "Last 4 digits of your phone",
    digits_help: "The phone number registered with the utility.",
    lookup_button: "Show status",
    other: "Look up another account",
    subscribe: "Get alerts",
    switch_to: "Tiếng Việt",
    loading: "Loading…",
    for_account: "Account",
    no_outage: "Power is on",
    no_outage_detail: "There is no outage at your premises right now.",
    outage: "Power outage",
    state: "Status",
    cause: "Cause",
    since: "Out since",
    window: "Expected back",
    likely: "most likely",
    no_etr: "No restoration estimate yet; we will tell you when there is one.",
    planned: "Upcoming planned work",
    history: "Outage history (12 months)",
    no_history: "No outages in the last 12 months.",
    back_at: "back at",
    lasted: "lasted",
    min: "min",
    hours: "h",
    err_fields: "Enter your account number and exactly the last 4 digits of your phone.",
    err_match: "The account number and phone digits do not match.",
    err_link: "This link is not valid or has expired. Look up with your account number.",
    err_many: "Too many attempts. Please try again in {m} minutes.",
    err_net: "Cannot connect. Please try again.",
    err_other: "Something went wrong. Please try again later.",
    alerts_on: "Alerts are on.",
    alerts_fail: "Could not turn alerts on.",
    alerts_none: "This browser does not support alerts.",
    alerts_off: "Alerts are not available yet.",
  },
};

// BEGIN GENERATED WORDS (python -m notifier words --js; from notifier/_plain_words.py)
const WORDS = {
 "causes": {
  "animal": {
   "en": "An animal touched the equipment",
   "vi": "Động vật chạm vào thiết bị điện"
  },
  "confirmed": {
   "en": "Cause being determined",
   "vi": "Đang xác định nguyên nhân"
  },
  "equipment": {
   "en": "Electrical equipment failed",
   "vi": "Hỏng thiết bị điện"
  },
  "fuse": {
   "en": "A fuse on the network blew",
   "vi": "Đứt cầu chì trên lưới điện"
  },
  "inferred": {
   "en": "Cause being determined (found from electricity meters)",
   "vi": "Đang xác định nguyên nhân (phát hiện qua công tơ điện)"
  },
  "lockout": {
   "en": "Grid fault: a circuit breaker switched off to protect the network",
   "vi": "Sự cố lưới điện: máy cắt tự động ngắt điện để bảo vệ lưới"
  },
  "meters": {
   "en": "Cause being determined (found from electricity meters)",
   "vi": "Đang xác định nguyên nhân (phát hiện qua công tơ điện)"
  },
  "nested": {
   "en": "Part of the network is still off after an earlier fault",
   "vi": "Một phần lưới điện chưa có điện lại sau sự cố trước"
  },
  "nested_linked": {
   "en": "Part of the network is still off after an earlier fault",
   "vi": "Một phần lưới điện chưa có điện lại sau sự cố trước"
  },
  "other": {
   "en": "Another cause",
   "vi": "Nguyên nhân khác"
  },
  "overload": {
   "en": "The network was overloaded",
   "vi": "Lưới điện bị quá tải"
  },
  "planned": {
   "en": "Planned work",
   "vi": "Cắt điện theo kế hoạch"
  },
  "scada_lockout": {
   "en": "Grid fault: a circuit breaker switched off to protect the network",
   "vi": "Sự cố lưới điện: máy cắt tự động ngắt điện để bảo vệ lưới"
  },
  "scada_reclose": {
   "en": "A brief grid fault; the breaker is switching back on",
   "vi": "Sự cố thoáng qua trên lưới điện, máy cắt đang đóng lại"
  },
  "unknown": {
   "en": "Cause being determined",
   "vi": "Đang xác định nguyên nhân"
  },
  "vegetation": {
   "en": "Trees or branches on the power lines",
   "vi": "Cây hoặc cành cây chạm vào đường dây"
  },
  "vehicle": {
   "en": "A vehicle hit a pole or line",
   "vi": "Xe va chạm cột điện hoặc đường dây"
  },
  "weather": {
   "en": "Bad weather",
   "vi": "Thời tiết xấu"
  }
 },
 "crew": {
  "dispatched": {
   "en": "crew on the way",
   "vi": "tổ sửa chữa đang đến"
  },
  "on_site": {
   "en": "crew at work",
   "vi": "tổ sửa chữa đang khắc phục"
  },
  "released": {
   "en": "",
   "vi": ""
  }
 },
 "crewUnassigned": {
  "en": "crew being assigned",
  "vi": "đang bố trí tổ sửa chữa"
 },
 "provenance": {
  "foreign": {
   "en": "Estimated from other areas' figures",
   "vi": "Ước tính từ số liệu của khu vực khác"
  },
  "local": {
   "en": "Estimated from past outages in your area",
   "vi": "Ước tính từ các lần mất điện trước tại khu vực"
  },
  "prior": {
   "en": "A first estimate from general figures",
   "vi": "Ước tính ban đầu từ số liệu chung"
  }
 },
 "provenanceUnknown": {
  "en": "Estimate",
  "vi": "Ước tính"
 },
 "scada": {
  "en": "Grid fault found by the control system",
  "vi": "Sự cố lưới điện do hệ thống điều khiển phát hiện"
 },
 "stateUnknown": {
  "en": "Being updated",
  "vi": "Đang cập nhật"
 },
 "states": {
  "cancelled": {
   "en": "Cancelled (no outage)",
   "vi": "Đã hủy (không mất điện)"
  },
  "confirmed": {
   "en": "Outage confirmed",
   "vi": "Đã xác nhận mất điện"
  },
  "partially_restored": {
   "en": "Partly restored",
   "vi": "Đã có điện một phần"
  },
  "predicted": {
   "en": "Being checked",
   "vi": "Đang kiểm tra"
  },
  "restored": {
   "en": "Power restored",
   "vi": "Đã có điện lại"
  }
 }
};
const CODE_RE = /^[A-Za-z0-9]+(?:[_.\-][A-Za-z0-9]+)*$/;
function causeWords(cause, lang) {
  const key = (cause || '').trim().toLowerCase();
  if (!key) return WORDS.causes.unknown[lang];
  if (WORDS.causes[key]) return WORDS.causes[key][lang];
  if (key.startsWith('scada_')) return WORDS.scada[lang];
  const code = CODE_RE.test(cause.trim()) && cause.includes('_');
  return code ? WORDS.causes.unknown[lang] : cause.trim();
}
function stateWords(state, lang) {
  const key = (state || '').trim().toLowerCase();
  return (WORDS.states[key] || WORDS.stateUnknown)[lang];
}
function statusWords(state, crew, lang) {
  const words = stateWords(state, lang);
  const key = (state || '').trim().toLowerCase();
  if (key !== 'confirmed' && key !== 'partially_restored') return words;
  const report = WORDS.crew[(crew || '').trim().toLowerCase()];
  if (report) return report[lang] ? `${words}, ${report[lang]}` : words;
  return key === 'confirmed' ? `${words}, ${WORDS.crewUnassigned[lang]}` : words;
}
function provenanceWords(p, lang) {
  const key = (p || '').trim().toLowerCase();
  return (WORDS.provenance[key] || WORDS.provenanceUnknown)[lang];
}
// END GENERATED WORDS

const params = new URLSearchParams(location.search);
const linkToken = params.get("t") || "";
let lang = localStorage.getItem(LANG_KEY) === "en" ? "en" : "vi";
let lastStatus = null;
let lastLookup = null; // how to refresh: {kind: "link"} or {kind: "account", body}
let lastError = null; // [key, vars]
let refreshTimer = null;

const t = (key) => TEXT[lang][key];
const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) if (v !== null && v !== undefined) node.setAttribute(k, v);
  for (const c of children) if (c !== null && c !== undefined) node.append(c instanceof Node ? c : String(c));
  return node;
}

function when(iso) {
  if (!iso) return "–";
  const locale = lang === "vi" ? "vi-VN" : "en-GB";
  return new Intl.DateTimeFormat(locale, {
    timeZone: TIME_ZONE, weekday: "short", day: "numeric", month: "short", hour: "2-digit", minute: "2-digit",
  }).format(new Date(iso));
}

function clock(iso) {
  return new Intl.DateTimeFormat(lang === "vi" ? "vi-VN" : "en-GB",
    { timeZone: TIME_ZONE, hour: "2-digit", minute: "2-digit" }).format(new Date(iso));
}

function duration(fromIso, toIso) {
  const minutes = Math.max(0, Math.round((Date.parse(toIso) - Date.parse(fromIso)) / 60000));
  if (minutes < 60) return `${minutes} ${t("min")}`;
  return `${Math.floor(minutes / 60)} ${t("hours")} ${minutes % 60} ${t("min")}`;
}

// Never a raw code in front of a customer: unknown codes read as "being determined".
const stateText = (s) => stateWords(s, lang);
// An open outage says what its crew reported; "crew at work" only when a crew said so.
const statusText = (o) => statusWords(o.state, o.crew_status, lang);
const causeText = (c) => causeWords(c, lang);

function outageCard(o) {
  const etr = o.etr || {};
  const rows = [
    [t("state"), statusText(o)],
    [t("cause"), causeText(o.planned ? "planned" : o.cause)],
    [t("since"), when(o.started_at)],
  ];
  const dl = el("dl", {});
  for (const [k, v] of rows) dl.append(el("dt", {}, k), el("dd", {}, v));
  let windowBlock;
  if (etr.earliest || etr.likely || etr.latest) {
    const from = etr.earliest || etr.likely || etr.latest;
    const to = etr.latest || etr.likely || etr.earliest;
    windowBlock = el("div", { class: "etr" },
      el("h3", {}, t("window")),
      el("p", { class: "window", "data-etr": "window" }, `${when(from)} – ${clock(to)}`),
      etr.likely ? el("p", { class: "muted" }, `${t("likely")}: ${when(etr.likely)}`) : null);
  } else {
    windowBlock = el("p", { class: "muted" }, t("no_etr"));
  }
  return el("section", { class: "card out", "data-outage-id": String(o.outage_id) },
    el("h2", {}, t("outage")), dl, windowBlock);
}

function render() {
  document.documentElement.lang = lang;
  document.title = t("title");
  for (const node of document.querySelectorAll("[data-t]")) node.textContent = t(node.dataset.t);
  $("lang").textContent = t("switch_to");
  $("lang").setAttribute("lang", lang === "vi" ? "en" : "vi");
  $("error").textContent = lastError ? t(lastError[0]).replace("{m}", lastError[1] || "") : "";
  const box = $("status");
  box.replaceChildren();
  const s = lastStatus;
  if (!s) return;
  box.append(el("p", { class: "muted" }, `${t("for_account")}: ${s.account_no}`));
  if (s.current.length) for (const o of s.current) box.append(outageCard(o));
  else box.append(el("section", { class: "card ok", id: "no-outage" },
    el("h2", {}, t("no_outage")), el("p", {}, t("no_outage_detail"))));
  if (s.planned.length) {
    const list = el("ul", { class: "history" });
    for (const p of s.planned) list.append(el("li", {}, `${when(p.starts_at)} – ${when(p.ends_at)}: ${p.reason}`));
    box.append(el("section", { class: "card", id: "planned" }, el("h2", {}, t("planned")), list));
  }
  const history = el("section", { class: "card", id: "history" }, el("h2", {}, t("history")));
  if (s.history.length) {
    const list = el("ul", { class: "history" });
    for (const o of s.history) {
      const back = o.restored_at ? `, ${t("back_at")} ${when(o.restored_at)} (${t("lasted")} ${duration(o.started_at, o.restored_at)})` : "";
      list.append(el("li", { "data-outage-id": String(o.outage_id) },
        `${when(o.started_at)}: ${stateText(o.state)} · ${causeText(o.planned ? "planned" : o.cause)}${back}`));
    }
    history.append(list);
  } else {
    history.append(el("p", { class: "muted" }, t("no_history")));
  }
  box.append(history);
  if (!linkToken) {
    box.append(el("button", { type: "button", class: "secondary", id: "other" }, t("other")));
    $("other").addEventListener("click", () => {
      lastStatus = null; lastLookup = null; lastError = null;
      $("lookup").hidden = false;
      render();
      $("account").focus();
    });
  }
}

async function fetchStatus(lookup) {
  let response;
  try {
    response = lookup.kind === "link"
      ? await fetch(`${STATUS_API}?t=${encodeURIComponent(linkToken)}`, { cache: "no-store" })
      : await fetch(STATUS_API, {
        method: "POST", cache: "no-store",
        headers: { "Content-Type": "application/json" }, body: JSON.stringify(lookup.body),
      });
  } catch (err) {
    return { error: ["err_net"] };
  }
  if (response.ok) return { status: await response.json() };
  if (response.status === 429) {
    const wait = Number(response.headers.get("Retry-After") || "300");
    return { error: ["err_many", String(Math.max(1, Math.ceil(wait / 60)))] };
  }
  if (response.status === 401) return { error: [lookup.kind === "link" ? "err_link" : "err_match"] };
  if (response.status === 422) return { error: ["err_fields"] };
  return { error: ["err_other"] };
}

async function show(lookup) {
  const result = await fetchStatus(lookup);
  if (result.status) {
    lastStatus = result.status;
    lastLookup = lookup;
    lastError = null;
    $("lookup").hidden = true;
  } else {
    lastError = result.error;
    if (lookup.kind === "link") $("lookup").hidden = false;
  }
  render();
  clearTimeout(refreshTimer);
  if (lastLookup) refreshTimer = setTimeout(() => show(lastLookup), REFRESH_MS);
}

function lookupSubmit(event) {
  event.preventDefault();
  const account = $("account").value.trim();
  const digits = $("digits").value.trim();
  if (!/^[A-Za-z0-9_.:-]{1,64}$/.test(account) || !/^[0-9]{4}$/.test(digits)) {
    lastError = ["err_fields"];
    render();
    return;
  }
  show({ kind: "account", body: { account_no: account, phone_last4: digits } });
}

function b64ToBytes(b64) {
  const pad = "=".repeat((4 - (b64.length % 4)) % 4);
  const raw = atob((b64 + pad).replace(/-/g, "+").replace(/_/g, "/"));
  return Uint8Array.from(raw, (c) => c.charCodeAt(0));
}

async function subscribe() {
  const note = $("note");
  if (!("serviceWorker" in navigator) || !("PushManager" in window)) { note.textContent = t("alerts_none"); return; }
  try {
    const keyResponse = await fetch(`${PUSH_API}vapid-public-key`);
    if (!keyResponse.ok) { note.textContent = t("alerts_off"); return; }
    const { public_key } = await keyResponse.json();
    const reg = await navigator.serviceWorker.register("sw.js");
    const sub = await reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: b64ToBytes(public_key) });
    const r = await fetch(`${PUSH_API}subscribe`, {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ token: linkToken, subscription: sub.toJSON() }),
    });
    note.textContent = r.ok ? t("alerts_on") : t("alerts_fail");
  } catch (err) {
    note.textContent = t("alerts_fail");
  }
}

$("lang").addEventListener("click", () => {
  lang = lang === "vi" ? "en" : "vi";
  localStorage.setItem(LANG_KEY, lang);
  render();
});
$("lookup").addEventListener("submit", lookupSubmit);
$("subscribe").addEventListener("click", subscribe);
// Alerts need the signed link: the notifier ties the subscription to it.
$("alerts").hidden = !linkToken;
if (linkToken) {
  render();
  $("status").textContent = t("loading");
  show({ kind: "link" });
} else {
  $("lookup").hidden = false;
  render();
}
