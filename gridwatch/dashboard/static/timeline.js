// The outage timeline in plain words: each entry's kind as a label, and its detail as
// "label value" pairs, times as the utility's local time, durations in minutes, known keys
// with plain labels. Unknown kinds and keys still show (underscores read as spaces), so a
// new entry from detection is never hidden, only less polished.
import { h } from "./dom.js";
import { fmtTime, fmtDuration, epochIso, CREW_LABELS, STATE_LABELS } from "./format.js";

const KIND_LABELS = {
  predicted: "Predicted",
  confirmed: "Confirmed",
  restored: "Restored",
  cancelled: "Cancelled",
  partially_restored: "Partly restored",
  reclose_shots: "Reclose shots",
  scada: "SCADA operation",
  meters_restored: "Meters back",
  unverified: "Meters not verified",
  restore_pings: "Restore pings answered",
  grew: "Grew",
  moved: "Moved",
  split: "Split",
  merged: "Merged",
  merged_into: "Merged into another outage",
  nested_linked: "Nested outage linked",
  premise_meters: "Premise meters",
  topology_changed: "Topology changed",
  operator_confirm: "Confirmed by an operator",
  operator_cancel: "Cancelled by an operator",
  operator_restore: "Restored by an operator",
  operator_applied: "Operator action applied",
  etr_override_set: "ETR override set",
  etr_override_cleared: "ETR override cleared",
  crew_status: "Crew status",
  planned_started: "Planned work started",
  planned_ended: "Planned work ended",
};

const KEY_LABELS = {
  why: "why",
  meters_off: "meters dark",
  meters_on: "meters on",
  from: "split from",
  into: "into",
  from_device: "from device",
  from_scope: "from scope",
  override_id: "override",
  etr_at: "ETR",
  set_by: "by",
  cleared_reason: "cleared because",
  operator_restored_s: "operator restored",
};

// Shown first, in this order; other keys follow in the order stored (PostgreSQL's jsonb
// keeps its own key order, not the writer's), and "by" comes last.
const KEY_ORDER = ["status", "action", "operation", "why", "cause", "etr_at", "reason"];
const KEY_LAST = ["set_by"];

function rank(key) {
  const first = KEY_ORDER.indexOf(key);
  if (first >= 0) return first;
  return KEY_LAST.includes(key) ? KEY_ORDER.length + 1 : KEY_ORDER.length;
}

// An epoch second is a number this large (1973 on); a smaller "*_s" is a duration.
const EPOCH_MIN_S = 1e8;
const LIST_SHOWN = 3; // longer lists (meters) show their length

const VALUE_WORDS = { ...STATE_LABELS, ...CREW_LABELS, none: "none" };

function keyLabel(key) {
  if (KEY_LABELS[key]) return KEY_LABELS[key];
  return key.replace(/_s$/, "").replace(/_at$/, "").replace(/_/g, " ");
}

function timeNode(iso) {
  return h("time", { datetime: iso }, fmtTime(iso));
}

// The value as text or a <time>, or null for what is not worth a line (objects, empties).
function valueNode(key, value) {
  if (value === null || value === undefined || value === "") return null;
  if (typeof value === "number" && Number.isFinite(value)) {
    if (key.endsWith("_duration_s")) return fmtDuration(value);
    if (key.endsWith("_s")) return value >= EPOCH_MIN_S ? timeNode(epochIso(value)) : fmtDuration(value);
    if (key === "confidence" && value >= 0 && value <= 1) return `${Math.round(value * 100)} %`;
    return value.toLocaleString("en");
  }
  if (typeof value === "boolean") return value ? "yes" : "no";
  if (typeof value === "string") {
    if (key.endsWith("_at") && !Number.isNaN(Date.parse(value))) return timeNode(value);
    return VALUE_WORDS[value] || value;
  }
  if (Array.isArray(value)) {
    const plain = value.filter((v) => v !== null && typeof v !== "object");
    if (!plain.length) return null;
    return plain.length > LIST_SHOWN || key === "meters" ? String(plain.length) : plain.join(", ");
  }
  return null;
}

function detailNodes(detail) {
  const pairs = [];
  const entries = Object.entries(detail || {}).sort(([a], [b]) => rank(a) - rank(b));
  for (const [key, value] of entries) {
    const shown = valueNode(key, value);
    if (shown === null) continue;
    if (pairs.length) pairs.push(h("span", { class: "sep", "aria-hidden": "true" }, " · "));
    pairs.push(h("span", { class: "kv", dataset: { key } },
      h("span", { class: "k" }, keyLabel(key)), " ", shown));
  }
  return pairs;
}

export function kindLabel(kind) {
  if (KIND_LABELS[kind]) return KIND_LABELS[kind];
  const words = kind.replace(/_/g, " ");
  return words.charAt(0).toUpperCase() + words.slice(1);
}

export function renderTimeline(entries) {
  if (!entries.length) return h("p", { class: "muted" }, "No entries.");
  return h("ol", { class: "timeline scroll", id: "timeline" }, entries.map((t) => {
    const pairs = detailNodes(t.detail);
    return h("li", { dataset: { kind: t.kind } },
      h("time", { datetime: t.at }, fmtTime(t.at)), h("strong", { class: "kind" }, kindLabel(t.kind)),
      pairs.length ? h("span", { class: "detail" }, " ", pairs) : null);
  }));
}
