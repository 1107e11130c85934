// The customer's page: shows their outage status and subscribes to app alerts (Web Push).
const token = new URLSearchParams(location.search).get("t") || "";
const fmt = (s) => (s ? new Date(s * 1000).toLocaleString("vi-VN", { timeZone: "Asia/Ho_Chi_Minh" }) : "?");

async function showStatus() {
  const el = document.getElementById("status");
  const r = await fetch(`api/status?t=${encodeURIComponent(token)}`);
  if (!r.ok) { el.textContent = "Liên kết không hợp lệ / Invalid link"; return; }
  const { outage } = await r.json();
  if (!outage) { el.textContent = "Có điện bình thường / No outage at your premises"; return; }
  el.textContent = "";
  const lines = [
    `Mất điện tại / Outage at: ${outage.where || "?"}`,
    `Nguyên nhân / Cause: ${outage.why || "?"}`,
    `Từ / Since: ${fmt(outage.started_at_s)}`,
    `Dự kiến có điện / Expected back: ${fmt(outage.etr_p10_s || outage.etr_p50_s)} – ${fmt(outage.etr_p90_s || outage.etr_p50_s)}`,
  ];
  for (const line of lines) { const p = document.createElement("p"); p.textContent = line; el.appendChild(p); }
}

function b64ToBytes(b64) {
  const pad = "=".repeat((4 - (b64.length % 4)) % 4);
  const raw = atob((b64 + pad).replace(/-/g, "+").replace(/_/g, "/"));
  return Uint8Array.from(raw, (c) => c.charCodeAt(0));
}

async function subscribe() {
  const note = document.getElementById("note");
  if (!("serviceWorker" in navigator) || !("PushManager" in window)) {
    note.textContent = "Trình duyệt không hỗ trợ / Browser not supported"; return;
  }
  const reg = await navigator.serviceWorker.register("sw.js");
  const { public_key } = await (await fetch("api/vapid-public-key")).json();
  const sub = await reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: b64ToBytes(public_key) });
  const r = await fetch("api/subscribe", {
    method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ token, subscription: sub.toJSON() }),
  });
  note.textContent = r.ok ? "Đã bật thông báo / Alerts on" : "Không thành công / Failed";
}

document.getElementById("subscribe").addEventListener("click", subscribe);
showStatus();
