// The feeder view: the device tree, loaded a level at a time, each device coloured by the
// worst open outage on it; devices below an open outage are shown without supply, and the
// devices above one are marked so the operator can follow the path down.
import { h, clear } from "./dom.js";
import { STATE_LABELS } from "./format.js";

export const RANK = { confirmed: 3, partially_restored: 2, predicted: 1 };
const PAGE = 200;
const MAX_TRACED = 50; // ancestor look-ups per refresh stay bounded in a storm

// The worst open outage on each device (the tree and the map colour by the same rule).
export function worstByDevice(activeOutages) {
  const worst = new Map();
  for (const o of activeOutages) {
    const previous = worst.get(o.device_id);
    if (!previous || (RANK[o.state] || 0) > (RANK[previous.state] || 0)) {
      worst.set(o.device_id, {
        outage_id: o.outage_id, state: o.state,
        out: Math.max(0, o.customers_affected - o.customers_restored),
      });
    }
  }
  return worst;
}

export function createTree(container, { api, onOpenOutage, onError }) {
  const nodes = new Map(); // device_id -> { device, li, row, toggle, ul, children: [] | null }
  const parentOf = new Map(); // device_id -> parent_id (topology changes rarely)
  let roots = [];
  let onDevice = new Map(); // device_id -> worst open outage on it
  let below = new Set(); // devices with an open outage somewhere below

  function label(device) {
    return [
      h("span", { class: "name" }, device.name || device.device_id),
      " ",
      // The id once: beside the name, or alone (no name) with the kind as its tag.
      h("span", { class: "kind" }, device.name ? `${device.kind} · ${device.device_id}` : device.kind),
    ];
  }

  function makeNode(device) {
    parentOf.set(device.device_id, device.parent_id);
    const toggle = h("button", {
      class: "toggle", type: "button", "aria-expanded": "false",
      "aria-label": `Show devices below ${device.name || device.device_id}`,
      onclick: () => toggleNode(device.device_id),
    }, "+");
    const badge = h("span", { class: "outage-badge" });
    const row = h("div", { class: "node", dataset: { deviceId: device.device_id } },
      toggle, label(device), badge);
    const ul = h("ul", { hidden: true });
    const li = h("li", {}, row, ul);
    const node = { device, li, row, toggle, ul, badge, children: null, expanded: false };
    nodes.set(device.device_id, node);
    return node;
  }

  async function loadChildren(node) {
    const page = await api.get(
      `/topology/devices/${encodeURIComponent(node.device.device_id)}/children`, { limit: PAGE });
    node.children = [];
    clear(node.ul);
    for (const child of page.items) {
      const childNode = nodes.get(child.device_id) || makeNode(child);
      childNode.device = child;
      node.children.push(child.device_id);
      node.ul.append(childNode.li);
    }
    if (page.next_after) {
      node.ul.append(h("li", { class: "muted" },
        `Only the first ${PAGE} devices are shown; search the API for the rest.`));
    }
    if (!page.items.length) {
      node.toggle.disabled = true;
      node.toggle.setAttribute("aria-label", "No devices below");
    }
  }

  async function toggleNode(deviceId, open) {
    const node = nodes.get(deviceId);
    if (!node) return;
    const expand = open === undefined ? !node.expanded : open;
    try {
      if (expand && node.children === null) await loadChildren(node);
    } catch (err) {
      onError(err);
      return;
    }
    node.expanded = expand;
    node.ul.hidden = !expand;
    node.toggle.textContent = expand ? "−" : "+";
    node.toggle.setAttribute("aria-expanded", String(expand));
    paint();
  }

  async function parentChain(deviceId) {
    const chain = [];
    let id = deviceId;
    for (let depth = 0; depth < 30 && id; depth++) {
      if (!parentOf.has(id)) {
        const device = await api.get(`/topology/devices/${encodeURIComponent(id)}`);
        parentOf.set(id, device.parent_id);
      }
      id = parentOf.get(id);
      if (id) chain.push(id);
    }
    return chain;
  }

  function paintNode(id, dark) {
    const node = nodes.get(id);
    if (!node) return;
    const outage = onDevice.get(id);
    node.row.className = "node";
    clear(node.badge);
    if (outage) {
      node.row.classList.add(`n-${outage.state}`);
      node.badge.append(h("button", {
        class: "link", type: "button",
        onclick: () => onOpenOutage(outage.outage_id),
        "aria-label": `Open outage ${outage.outage_id}, ${STATE_LABELS[outage.state]}`,
      }, `${STATE_LABELS[outage.state]} outage #${outage.outage_id} · ${outage.out} out`));
    } else if (dark) {
      node.row.classList.add("n-dark");
      node.badge.append(h("span", { class: "muted" }, "no supply"));
    } else if (below.has(id)) {
      node.row.classList.add("n-below");
      node.badge.append(h("span", { class: "muted" }, "outage below"));
    }
    for (const child of node.children || []) paintNode(child, dark || Boolean(outage));
  }

  function paint() {
    for (const id of roots) paintNode(id, false);
  }

  async function refresh(activeOutages) {
    const worst = worstByDevice(activeOutages);
    onDevice = worst;
    if (!roots.length) {
      const page = await api.get("/topology/roots", { limit: PAGE });
      const ul = h("ul", { class: "roots" });
      roots = page.items.map((d) => { const node = makeNode(d); ul.append(node.li); return d.device_id; });
      clear(container).append(roots.length ? ul : h("p", { class: "muted" }, "No devices loaded."));
    }
    const traced = new Set();
    const chains = await Promise.all(
      [...worst.keys()].slice(0, MAX_TRACED).map((id) => parentChain(id).catch(() => [])));
    for (const chain of chains) for (const id of chain) traced.add(id);
    below = traced;
    paint();
  }

  // Open every device on the way down to an outage's device (from the detail view).
  async function reveal(deviceId) {
    const chain = (await parentChain(deviceId)).reverse();
    for (const id of chain) await toggleNode(id, true);
    const node = nodes.get(deviceId);
    if (node) node.row.scrollIntoView({ block: "nearest" });
  }

  return { refresh, reveal };
}
