// The crew / dispatch view: every active outage with its crew status (GET /dispatch, most
// customers out first), and for an operator one form to set a crew's status
// (PUT /outages/{id}/crew). A viewer sees the board and a note instead of the form; the API
// says which through may_set_crew, so the page never guesses the token's role.
import { h, clear, $ } from "./dom.js";
import { CREW_LABELS, deviceText } from "./format.js";

const BOARD_LIMIT = 200;
// The status an operator most likely sets next, preselected in the form.
const NEXT_STATUS = { none: "dispatched", dispatched: "on_site", on_site: "released", released: "dispatched" };

export function createCrewBoard(root, { api, shortTime, onOpenOutage, onChanged, onError }) {
  const body = $("tbody", root);
  const form = $("#crew-form", root);
  const legend = $("legend", form);
  const status = $("#crew-status", form);
  const cause = $("#crew-cause", form);
  const reason = $("#crew-reason", form);
  const save = $("#crew-save", form);
  const problem = $("#crew-error", root);
  const result = $("#crew-result", root);
  let editing = null; // outage id the form is open for

  function crewCell(item) {
    const key = item.crew ? item.crew.status : "none";
    const cause = item.crew && item.crew.cause ? ` · ${item.crew.cause}` : "";
    return h("td", { dataset: { field: "crew" } },
      h("span", { class: `crew c-${key}` }, CREW_LABELS[key] || key), cause);
  }

  function sinceCell(item) {
    if (!item.crew) return h("td", { dataset: { field: "crew-since" } }, "–");
    return h("td", { dataset: { field: "crew-since" } },
      h("time", { datetime: item.crew.set_at }, shortTime(item.crew.set_at)),
      h("span", { class: "muted" }, ` by ${item.crew.set_by}`));
  }

  function row(item, maySet) {
    const id = item.outage_id;
    return h("tr", { dataset: { outageId: id, crew: item.crew ? item.crew.status : "none" } },
      h("td", {}, h("button", {
        type: "button", class: "link", "aria-label": `Outage ${id}`, onclick: () => onOpenOutage(id),
      }, `#${id}`)),
      h("td", {}, deviceText(item.device), h("span", { class: "muted" }, ` · ${item.zone}`)),
      h("td", { class: "num" }, item.customers_out.toLocaleString("en")),
      h("td", {}, h("time", { datetime: item.started_at }, shortTime(item.started_at))),
      crewCell(item),
      sinceCell(item),
      h("td", {}, item.etr && item.etr.p50 ? shortTime(item.etr.p50) : "–"),
      maySet ? h("td", {}, h("button", {
        type: "button", class: "secondary small", "aria-label": `Set crew for outage ${id}`,
        onclick: () => openForm(item),
      }, "Set crew")) : null);
  }

  function openForm(item) {
    editing = item.outage_id;
    legend.textContent = `Crew for outage #${item.outage_id} (${deviceText(item.device)})`;
    status.value = NEXT_STATUS[item.crew ? item.crew.status : "none"];
    cause.value = "";
    reason.value = "";
    problem.textContent = "";
    result.textContent = "";
    form.hidden = false;
    status.focus();
  }

  function closeForm() {
    editing = null;
    form.hidden = true;
  }

  async function submit(event) {
    event.preventDefault();
    problem.textContent = "";
    result.textContent = "";
    const why = reason.value.trim();
    if (!why) { problem.textContent = "A reason is required for a crew change."; reason.focus(); return; }
    const payload = { status: status.value, reason: why };
    if (cause.value.trim()) payload.cause = cause.value.trim();
    const outageId = editing;
    save.disabled = true;
    try {
      await api.put(`/outages/${outageId}/crew`, payload);
      closeForm();
      result.textContent = `Outage #${outageId}: crew ${CREW_LABELS[payload.status]}.`;
      await refresh();
      onChanged(outageId);
    } catch (err) {
      problem.textContent = err.message;
    } finally {
      save.disabled = false;
    }
  }

  form.addEventListener("submit", (event) => submit(event).catch(onError));
  $("#crew-close", form).addEventListener("click", closeForm);

  async function refresh() {
    const board = await api.get("/dispatch", { limit: BOARD_LIMIT });
    const c = board.crew_counts;
    $("#crew-counts", root).textContent = [
      `${c.none} without a crew`, `${c.dispatched} dispatched`, `${c.on_site} on site`,
      `${c.released} released`,
    ].join(" · ") + (board.truncated ? ` (first ${board.limit} shown)` : "");
    clear(body);
    for (const item of board.items) body.append(row(item, board.may_set_crew));
    $("#crews-empty", root).hidden = board.items.length > 0;
    $("#crew-action-head", root).hidden = !board.may_set_crew;
    $("#crew-role-note", root).hidden = board.may_set_crew;
    if (!board.may_set_crew || (editing !== null && !board.items.some((i) => i.outage_id === editing))) {
      closeForm(); // a viewer, or the outage closed meanwhile
    }
  }

  return { refresh };
}
