// Times are shown in the utility's local time (the service's offset, not the browser's).
export const STATE_LABELS = {
  predicted: "predicted",
  confirmed: "confirmed",
  partially_restored: "partly restored",
  restored: "restored",
  cancelled: "cancelled",
};
export const OPEN_STATES = new Set(["predicted", "confirmed", "partially_restored"]);

let offsetH = 7;
export function setOffset(hours) { offsetH = hours; }

function shifted(iso) {
  const ms = Date.parse(iso);
  return Number.isNaN(ms) ? null : new Date(ms + offsetH * 3600e3);
}

const pad = (n) => String(n).padStart(2, "0");

export function fmtTime(iso) {
  if (!iso) return "–";
  const d = shifted(iso);
  if (!d) return "?";
  return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ` +
    `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}`;
}

export function fmtClock(iso) {
  if (!iso) return "–";
  const d = shifted(iso);
  return d ? `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}` : "?";
}

export function fmtDuration(seconds) {
  if (!Number.isFinite(seconds) || seconds < 0) return "–";
  const m = Math.round(seconds / 60);
  return m < 60 ? `${m} min` : `${Math.floor(m / 60)} h ${pad(m % 60)} min`;
}

// <input type="datetime-local"> value (local utility time) <-> ISO 8601 with the offset.
export function offsetText() {
  const sign = offsetH < 0 ? "-" : "+";
  const abs = Math.abs(offsetH);
  return `${sign}${pad(Math.floor(abs))}:${pad(Math.round((abs % 1) * 60))}`;
}

export function toLocalInput(iso) {
  const d = iso ? shifted(iso) : null;
  if (!d) return "";
  return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}T` +
    `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}`;
}

export function fromLocalInput(value) {
  if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2})?$/.test(value)) return null;
  return `${value.length === 16 ? value + ":00" : value}${offsetText()}`;
}

export function localDay(ms) {
  const d = new Date(ms + offsetH * 3600e3);
  return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}`;
}

export function customersOut(o) {
  return Math.max(0, (o.customers_affected || 0) - (o.customers_restored || 0));
}

// A device as an operator reads it: its name where it has one, else its id, with the kind
// as a plain tag ("Z01-S01-F01-BRK · breaker", "TBA 1 · transformer · T1"). The id stays
// in view because it is what SCADA and the field crews call the device.
export function deviceText(device) {
  const id = device.device_id;
  const parts = [device.name || id];
  if (device.kind) parts.push(device.kind);
  if (device.name) parts.push(id);
  return parts.join(" · ");
}

export const CREW_LABELS = {
  none: "no crew",
  dispatched: "dispatched",
  on_site: "on site",
  released: "released",
};

export function epochIso(seconds) {
  return new Date(seconds * 1000).toISOString();
}
