// The feeder map: every device at its WGS84 position (an SVG, no library and no tiles:
// nothing is fetched from another origin), lines parent -> child, coloured like the tree
// (worst open outage on a device; devices and lines below it without supply; devices above
// it "outage below"). Geometry is read once per opening; colours follow every refresh.
// Zoom and pan (zoom.js) move the viewBox; dots and markers keep their size on screen.
import { clear } from "./dom.js";
import { STATE_LABELS, deviceText } from "./format.js";
import { RANK, worstByDevice } from "./tree.js";
import { createZoom } from "./zoom.js";

const MAP_LIMIT = 20000; // the API's cap per request
const WIDTH = 1000; // viewBox units; the SVG scales to its card
const PAD = 28;
const MAX_LABELS = 40; // text labels beside outage markers; more would be unreadable
const STATE_TEXT = { ok: "supplied", dark: "no supply", below: "outage below" };

export function createMap(root, { api, onOpenOutage, onError }) {
  const svg = root.querySelector("svg");
  const NS = svg.namespaceURI; // the SVG namespace, taken from the page's own <svg>
  const summary = root.querySelector(".map-summary");
  let placed = new Map(); // device_id -> { device, x, y, dot, title, state }
  let parentOf = new Map(); // every loaded device, placed or not (the tree runs through both)
  let children = new Map();
  let edges = []; // { child, line, title, dark }
  let outageLayer = null;
  let loaded = false;
  let truncated = false;
  let total = 0;
  let radius = 5;
  let worst = new Map();
  let selected = null;
  let rescaleFrame = 0;
  const zoom = createZoom(svg, {
    onZoom: () => scheduleRescale(),
    controls: {
      zoomIn: root.querySelector("#map-zoom-in"),
      zoomOut: root.querySelector("#map-zoom-out"),
      reset: root.querySelector("#map-reset"),
    },
  });

  function svgEl(tag, attrs = {}, text) {
    const el = document.createElementNS(NS, tag);
    for (const [key, value] of Object.entries(attrs)) {
      if (value !== null && value !== undefined) el.setAttribute(key, String(value));
    }
    if (text !== undefined) el.append(document.createTextNode(text));
    return el;
  }

  // Equirectangular, longitudes shrunk by cos(mid latitude) so distances look right; fitted
  // to the devices' bounding box.
  function projection(devices) {
    let minLat = Infinity, maxLat = -Infinity, minLon = Infinity, maxLon = -Infinity;
    for (const d of devices) {
      minLat = Math.min(minLat, d.lat); maxLat = Math.max(maxLat, d.lat);
      minLon = Math.min(minLon, d.lon); maxLon = Math.max(maxLon, d.lon);
    }
    const kx = Math.cos(((minLat + maxLat) / 2) * Math.PI / 180);
    const spanX = Math.max((maxLon - minLon) * kx, 1e-5);
    const spanY = Math.max(maxLat - minLat, 1e-5);
    const height = Math.round(Math.min(Math.max(WIDTH * spanY / spanX, 360), 1400));
    const scale = Math.min((WIDTH - 2 * PAD) / spanX, (height - 2 * PAD) / spanY);
    const offX = (WIDTH - spanX * scale) / 2;
    const offY = (height - spanY * scale) / 2;
    return {
      height,
      xy: (lat, lon) => [offX + (lon - minLon) * kx * scale, offY + (maxLat - lat) * scale],
    };
  }


  async function load() {
    const page = await api.get("/topology/map", { limit: MAP_LIMIT });
    truncated = page.truncated;
    total = page.total;
    parentOf = new Map();
    children = new Map();
    for (const d of page.items) {
      parentOf.set(d.device_id, d.parent_id);
      if (d.parent_id) {
        if (!children.has(d.parent_id)) children.set(d.parent_id, []);
        children.get(d.parent_id).push(d.device_id);
      }
    }
    const withPosition = page.items.filter((d) => d.lat !== null && d.lon !== null);
    clear(svg);
    placed = new Map();
    edges = [];
    if (!withPosition.length) { loaded = true; return; }
    const { height, xy } = projection(withPosition);
    radius = Math.min(7, Math.max(1.5, WIDTH / (5 * Math.sqrt(withPosition.length))));
    // Plain lines and dots are drawing, not content: the outage markers (buttons) and the
    // summary below carry the information for assistive technology; titles give tooltips.
    const lineLayer = svgEl("g", { class: "edges", "aria-hidden": "true" });
    const dotLayer = svgEl("g", { class: "dots", "aria-hidden": "true" });
    outageLayer = svgEl("g", { class: "markers" });
    for (const d of withPosition) {
      const [x, y] = xy(d.lat, d.lon);
      const title = svgEl("title");
      const dot = svgEl("circle", {
        class: "dot", cx: x.toFixed(1), cy: y.toFixed(1), r: radius.toFixed(2),
        "data-device-id": d.device_id,
      });
      dot.append(title);
      dotLayer.append(dot);
      placed.set(d.device_id, { device: d, x, y, dot, title, state: null });
    }
    for (const [id, entry] of placed) {
      const parent = placed.get(entry.device.parent_id);
      if (!parent) continue; // a line needs both ends placed
      const title = svgEl("title");
      const line = svgEl("line", {
        class: "edge", x1: parent.x.toFixed(1), y1: parent.y.toFixed(1),
        x2: entry.x.toFixed(1), y2: entry.y.toFixed(1), "data-child-id": id,
      });
      line.append(title);
      lineLayer.append(line);
      edges.push({ child: id, parent: parent.device, line, title, dark: null });
    }
    svg.append(lineLayer, dotLayer, outageLayer);
    loaded = true;
    zoom.setBase(0, 0, WIDTH, height); // a re-read shows the whole network again
  }

  function downstream(roots) {
    const dark = new Set();
    const stack = [...roots];
    while (stack.length) {
      for (const child of children.get(stack.pop()) || []) {
        if (!dark.has(child)) { dark.add(child); stack.push(child); }
      }
    }
    return dark;
  }

  function upstream(ids) {
    const above = new Set();
    for (const id of ids) {
      let parent = parentOf.get(id);
      for (let depth = 0; parent && depth < 64 && !above.has(parent); depth++) {
        above.add(parent);
        parent = parentOf.get(parent);
      }
    }
    return above;
  }

  function marker(entry, outage, labelled) {
    const label = `Open outage ${outage.outage_id}, ${STATE_LABELS[outage.state]}, ` +
      `on ${deviceText(entry.device)}, ${outage.out} customers out`;
    const open = () => onOpenOutage(outage.outage_id);
    const g = svgEl("g", {
      class: `mk mk-${outage.state}`, role: "button", tabindex: "0", "aria-label": label,
      "data-device-id": entry.device.device_id, "data-state": outage.state,
      "data-outage-id": outage.outage_id,
    });
    g.append(svgEl("title", {}, label));
    // A filled disc inside a ring: a shape no plain device has, whatever the colour.
    // Sizes are divided by the zoom so a marker looks the same at every zoom.
    const k = zoom.scale();
    const r = Math.max(11, radius * 2) / k;
    const cx = entry.x.toFixed(2), cy = entry.y.toFixed(2);
    g.append(svgEl("circle", { class: "ring", cx, cy, r: (r + 6 / k).toFixed(3) }));
    g.append(svgEl("circle", { class: "disc", cx, cy, r: r.toFixed(3) }));
    if (labelled) {
      g.append(svgEl("text", {
        x: (entry.x + r + 10 / k).toFixed(2), y: (entry.y + 7 / k).toFixed(2),
        "font-size": (20 / k).toFixed(3), "stroke-width": (4 / k).toFixed(3),
        "aria-hidden": "true",
      }, `#${outage.outage_id} ${STATE_LABELS[outage.state]}`));
    }
    g.addEventListener("click", open);
    g.addEventListener("keydown", (event) => {
      if (event.key === "Enter" || event.key === " ") { event.preventDefault(); open(); }
    });
    return g;
  }

  function paint() {
    if (!loaded) return;
    const dark = downstream(worst.keys());
    const below = upstream(worst.keys());
    let darkPlaced = 0;
    for (const [id, entry] of placed) {
      const outage = worst.get(id);
      const state = outage ? outage.state : dark.has(id) ? "dark" : below.has(id) ? "below" : "ok";
      if (state === "dark") darkPlaced++;
      if (state === entry.state) continue;
      entry.state = state;
      entry.dot.setAttribute("class", `dot d-${state}`);
      entry.dot.setAttribute("data-state", state);
      entry.title.textContent = `${deviceText(entry.device)}: ` +
        (outage ? `${STATE_LABELS[state]} outage` : STATE_TEXT[state]);
    }
    for (const edge of edges) {
      const isDark = dark.has(edge.child);
      if (isDark === edge.dark) continue;
      edge.dark = isDark;
      edge.line.setAttribute("class", isDark ? "edge e-dark" : "edge");
      edge.title.textContent = isDark
        ? `no supply: ${deviceText(edge.parent)} to ${deviceText(placed.get(edge.child).device)}`
        : "";
    }
    const onMap = paintMarkers();
    const unplaced = worst.size - onMap.length;
    summary.textContent = [
      `${placed.size.toLocaleString("en")} of ${total.toLocaleString("en")} devices placed`,
      `${onMap.length} outage${onMap.length === 1 ? "" : "s"} on the map`,
      `${darkPlaced.toLocaleString("en")} placed devices without supply`,
      unplaced ? `${unplaced} outage device${unplaced === 1 ? " has" : "s have"} no position (see the tree)` : null,
      truncated ? `only the first ${MAP_LIMIT.toLocaleString("en")} devices are drawn` : null,
    ].filter(Boolean).join(" · ") + ".";
  }

  // Outage markers and the selection ring, drawn for the current zoom; returns the
  // outages on the map, worst first.
  function paintMarkers() {
    const focusedId = document.activeElement && document.activeElement.dataset
      ? document.activeElement.dataset.outageId : undefined;
    clear(outageLayer);
    const onMap = [...worst].filter(([id]) => placed.has(id))
      .sort(([, a], [, b]) => (RANK[b.state] || 0) - (RANK[a.state] || 0) || b.out - a.out);
    onMap.forEach(([id, outage], i) => outageLayer.append(marker(placed.get(id), outage, i < MAX_LABELS)));
    const sel = selected && placed.get(selected);
    if (sel) {
      outageLayer.append(svgEl("circle", {
        class: "sel", cx: sel.x.toFixed(2), cy: sel.y.toFixed(2),
        r: (Math.max(14, radius * 3) / zoom.scale()).toFixed(3), "aria-hidden": "true",
      }));
    }
    if (focusedId !== undefined) { // a redraw must not drop the keyboard user's place
      const again = outageLayer.querySelector(`.mk[data-outage-id="${CSS.escape(focusedId)}"]`);
      if (again) again.focus();
    }
    return onMap;
  }

  // Dots keep their size on screen; one pass per frame however fast the wheel turns.
  function scheduleRescale() {
    if (rescaleFrame) return;
    rescaleFrame = requestAnimationFrame(() => {
      rescaleFrame = 0;
      if (!loaded || !outageLayer) return;
      const r = (radius / zoom.scale()).toFixed(3);
      for (const entry of placed.values()) entry.dot.setAttribute("r", r);
      paintMarkers();
    });
  }

  return {
    // Whether any device has a position (one device is enough to ask).
    async available() {
      const page = await api.get("/topology/map", { limit: 1 });
      return page.positioned > 0;
    },
    async show() {
      try {
        await load();
        paint();
      } catch (err) {
        onError(err);
      }
    },
    refresh(activeOutages) {
      worst = worstByDevice(activeOutages);
      paint();
    },
    has: (deviceId) => placed.has(deviceId),
    // "Show in feeder view" while the map is open: ring the device and bring it into view.
    reveal(deviceId) {
      selected = deviceId;
      paint();
      const entry = placed.get(deviceId);
      if (entry) zoom.centreOn(entry.x, entry.y); // zoomed in: bring it into view
      svg.scrollIntoView({ block: "nearest" });
    },
  };
}
