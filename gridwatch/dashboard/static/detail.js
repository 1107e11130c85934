// One outage: facts, ETR quantiles and model, the override form, the operator actions,
// the timeline, affected customers and the notices sent.
import { h, clear } from "./dom.js";
import {
  STATE_LABELS, OPEN_STATES, CREW_LABELS, fmtTime, fmtDuration, toLocalInput, fromLocalInput,
  offsetText, customersOut, deviceText,
} from "./format.js";
import { renderTimeline } from "./timeline.js";

const ACTIONS = [
  { action: "confirm", label: "Confirm", when: ["predicted"], cls: "" },
  { action: "cancel", label: "Cancel (false positive)", when: ["predicted", "confirmed"], cls: "secondary" },
  { action: "restore", label: "Mark restored", when: ["predicted", "confirmed", "partially_restored"], cls: "secondary" },
];

function badge(state) {
  return h("span", { class: `badge b-${state}` }, STATE_LABELS[state] || state);
}

function crewText(crew) {
  if (!crew) return "no crew reported";
  const cause = crew.cause ? ` · ${crew.cause}` : "";
  return `${CREW_LABELS[crew.status] || crew.status}${cause}, since ${fmtTime(crew.set_at)} by ${crew.set_by}`;
}

function facts(o) {
  const rows = [
    ["State", badge(o.state)],
    ["Device", h("span", { dataset: { field: "device" } }, deviceText(o.device))],
    ["Zone", o.zone],
    ["Cause", o.cause || "–"],
    ["Planned", o.planned ? "yes" : "no"],
    ["Started", fmtTime(o.started_at)],
    ["Confirmed", fmtTime(o.confirmed_at)],
    ["Restored", fmtTime(o.restored_at)],
    ["Confidence", `${Math.round(o.confidence * 100)} %`],
    ["Crew", h("span", { dataset: { field: "crew" } }, crewText(o.crew))],
    ["Customers", `${customersOut(o)} out of ${o.customers_affected} affected (${o.customers_restored} back)`],
    ["Meters", `${o.meters_affected} affected, ${o.meters_restored} back`],
  ];
  if (o.parent_outage_id) rows.push(["Merged into", `#${o.parent_outage_id}`]);
  return h("dl", {}, rows.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
}

function etrBlock(o) {
  const q = o.etr || {};
  const started = Date.parse(o.started_at);
  const cell = (label, iso) => h("div", {}, h("span", { class: "label" }, label),
    h("strong", { dataset: { etr: label } }, fmtTime(iso)),
    iso ? h("span", { class: "muted" }, ` (${fmtDuration((Date.parse(iso) - started) / 1000)} after start)`) : null);
  const source = o.etr_history && o.etr_history[0] ? o.etr_history[0].source : null;
  return [
    h("h3", {}, "Estimated restoration (ETR)"),
    h("div", { class: "etr", id: "etr-quantiles" },
      cell("earliest (p10)", q.p10), cell("likely (p50)", q.p50), cell("latest (p90)", q.p90)),
    h("p", { class: "muted", id: "etr-model" },
      `Model version: ${q.model_version || "none"}`, source ? ` · latest source: ${source}` : ""),
    o.etr_override
      ? h("p", { id: "etr-override-in-force" }, h("strong", {}, "Override in force: "),
        `${fmtTime(o.etr_override.etr_at)} by ${o.etr_override.set_by} — “${o.etr_override.reason}”`)
      : null,
  ];
}

function etrHistory(o) {
  if (!o.etr_history.length) return null;
  return [
    h("h3", {}, "ETR history"),
    h("div", { class: "table-wrap scroll" }, h("table", {},
      h("caption", { class: "visually-hidden" }, "ETR history, newest first"),
      h("thead", {}, h("tr", {}, ["Computed", "p10", "p50", "p90", "Source", "Model"].map(
        (c) => h("th", { scope: "col" }, c)))),
      h("tbody", {}, o.etr_history.map((e) => h("tr", {},
        h("td", {}, fmtTime(e.computed_at)), h("td", {}, fmtTime(e.p10)), h("td", {}, fmtTime(e.p50)),
        h("td", {}, fmtTime(e.p90)), h("td", {}, e.source), h("td", {}, e.model_version || "–"))))))
  ];
}

function meters(o) {
  const page = o.affected_meters;
  if (!page.items.length) return null;
  return [
    h("h3", {}, `Affected customers (${o.customers_affected})`),
    h("div", { class: "table-wrap scroll" }, h("table", {},
      h("caption", { class: "visually-hidden" }, "Affected meters and customers"),
      h("thead", {}, h("tr", {}, ["Meter", "Status", "Account", "Name", "Phone"].map(
        (c) => h("th", { scope: "col" }, c)))),
      h("tbody", {}, page.items.map((m) => h("tr", {},
        h("td", {}, m.meter_id), h("td", {}, m.status), h("td", {}, m.account_no || "–"),
        h("td", {}, m.customer_name || "–"), h("td", {}, m.phone || "–")))))),
    page.next_after ? h("p", { class: "muted" }, `First ${page.items.length} shown.`) : null,
  ];
}

function notices(o) {
  const counts = Object.entries(o.notifications_by_status || {});
  return [
    h("h3", {}, "Customer notices"),
    counts.length
      ? h("p", { id: "notice-counts" }, counts.map(([k, v]) => `${k}: ${v}`).join(" · "))
      : h("p", { class: "muted" }, "None sent."),
    o.notifications.length ? h("div", { class: "table-wrap scroll" }, h("table", {},
      h("caption", { class: "visually-hidden" }, "Newest notices"),
      h("thead", {}, h("tr", {}, ["Created", "Kind", "Channel", "Status", "To"].map(
        (c) => h("th", { scope: "col" }, c)))),
      h("tbody", {}, o.notifications.map((n) => h("tr", {},
        h("td", {}, fmtTime(n.created_at)), h("td", {}, n.kind), h("td", {}, n.channel),
        h("td", {}, n.delivery_status || n.status), h("td", {}, n.address || "–")))))) : null,
  ];
}

export function renderDetail(container, o, { api, onChanged, onReveal, serverNowIso }) {
  const open = OPEN_STATES.has(o.state);
  const message = h("p", { class: "ok", role: "status", id: "action-result" });
  const problem = h("p", { class: "error", role: "alert", id: "action-error" });

  async function run(button, work, success) {
    problem.textContent = "";
    message.textContent = "";
    button.disabled = true;
    try {
      await work();
      message.textContent = success;
      onChanged(o.outage_id);
    } catch (err) {
      problem.textContent = err.message;
    } finally {
      button.disabled = false;
    }
  }

  // ETR override: the time is the utility's local time (the offset is shown beside it).
  const suggested = o.etr && o.etr.p50 ? o.etr.p50 : serverNowIso();
  const etrInput = h("input", {
    id: "override-etr", name: "etr_at", type: "datetime-local", required: true,
    value: toLocalInput(suggested), "aria-describedby": "override-etr-help",
  });
  const etrReason = h("input", {
    id: "override-reason", name: "reason", type: "text", required: true, maxlength: 500,
    placeholder: "e.g. crew on site reports cable fault, 3 h",
  });
  const overrideSubmit = h("button", { type: "submit" }, "Set ETR override");
  const overrideForm = h("form", {
    class: "panel", id: "override-form", novalidate: true,
    onsubmit: (event) => {
      event.preventDefault();
      const etrAt = fromLocalInput(etrInput.value);
      const reason = etrReason.value.trim();
      if (!etrAt) { problem.textContent = "Give the restoration date and time."; etrInput.focus(); return; }
      if (!reason) { problem.textContent = "A reason is required for an ETR override."; etrReason.focus(); return; }
      run(overrideSubmit, () => api.put(`/outages/${o.outage_id}/etr-override`, { etr_at: etrAt, reason }),
        "ETR override set.");
    },
  }, h("fieldset", {}, h("legend", {}, "Override the ETR"),
    h("label", { for: "override-etr" }, "Restoration time"),
    etrInput,
    h("p", { class: "help", id: "override-etr-help" }, `Local time (UTC${offsetText()}).`),
    h("label", { for: "override-reason" }, "Reason (required)"),
    etrReason,
    h("div", { class: "actions" }, overrideSubmit,
      o.etr_override ? h("button", {
        type: "button", class: "secondary", id: "override-clear",
        onclick: (event) => {
          const reason = etrReason.value.trim();
          if (!reason) { problem.textContent = "Give a reason for clearing the override."; etrReason.focus(); return; }
          run(event.currentTarget, () => api.post(`/outages/${o.outage_id}/etr-override/clear`, { reason }),
            "ETR override cleared.");
        },
      }, "Clear override") : null)));

  const actionReason = h("input", {
    id: "action-reason", type: "text", required: true, maxlength: 500,
    placeholder: "e.g. SCADA confirms breaker lockout",
  });
  const actionButtons = ACTIONS.filter((a) => a.when.includes(o.state)).map((a) => h("button", {
    type: "button", class: a.cls, dataset: { action: a.action },
    onclick: (event) => {
      const reason = actionReason.value.trim();
      if (!reason) { problem.textContent = "A reason is required."; actionReason.focus(); return; }
      run(event.currentTarget, () => api.post(`/outages/${o.outage_id}/${a.action}`, { reason }),
        `${a.label}: done.`);
    },
  }, a.label));
  const actionForm = actionButtons.length ? h("form", {
    class: "panel", id: "action-form", novalidate: true, onsubmit: (e) => e.preventDefault(),
  }, h("fieldset", {}, h("legend", {}, "Actions"),
    h("label", { for: "action-reason" }, "Reason (required)"), actionReason,
    h("div", { class: "actions" }, actionButtons))) : null;

  clear(container).append(...[
    h("h2", { id: "detail-title" }, `Outage #${o.outage_id} `, badge(o.state)),
    h("p", {}, h("button", {
      type: "button", class: "link", onclick: () => onReveal(o.device_id),
    }, "Show in feeder view")),
    facts(o),
    ...etrBlock(o),
    problem, message,
    open ? overrideForm : null,
    open ? actionForm : null,
    h("h3", {}, "Timeline"), renderTimeline(o.timeline),
    etrHistory(o), meters(o), notices(o),
  ].flat().filter(Boolean));
}
