// Zoom and pan of an SVG through its viewBox: the drawing is never redrawn, only looked at
// through a smaller window. Wheel (about the pointer), +/- buttons and keys (about the
// centre), drag and arrow keys to pan, 0 or Reset for the whole drawing. No library.
export const MAX_ZOOM = 40;
const STEP = 1.5; // one button press or key
const WHEEL_RATE = 0.002; // zoom factor e^(-deltaY * rate): 100 px of wheel is about 1.2x
const DRAG_PX = 4; // a press that moves less is a click (a marker opens), not a pan
const KEY_PAN = 0.1; // arrow keys move a tenth of the view

export function createZoom(svg, { onZoom, controls }) {
  let base = null; // the whole drawing { x, y, w, h }
  let k = 1; // zoom factor (1: the whole drawing)
  let cx = 0; // view centre, drawing units
  let cy = 0;
  let press = null; // { id, x, y, cx, cy, dragging }
  let suppressClick = false;

  // The centre may leave the drawing by a quarter view at most, and not at all at k = 1,
  // so zooming back out always ends on the whole drawing.
  function clampCentre() {
    const w = base.w / k, h = base.h / k;
    const slackX = (w / 2) * (1 - 1 / k), slackY = (h / 2) * (1 - 1 / k);
    cx = Math.min(Math.max(cx, base.x + w / 2 - slackX), base.x + base.w - w / 2 + slackX);
    cy = Math.min(Math.max(cy, base.y + h / 2 - slackY), base.y + base.h - h / 2 + slackY);
  }

  function apply() {
    if (!base) return;
    clampCentre();
    const w = base.w / k, h = base.h / k;
    svg.setAttribute("viewBox", [cx - w / 2, cy - h / 2, w, h].map((v) => +v.toFixed(3)).join(" "));
    svg.dataset.zoom = k.toFixed(3);
    if (k > 1) svg.setAttribute("data-zoomed", ""); else svg.removeAttribute("data-zoomed");
    controls.zoomIn.disabled = k >= MAX_ZOOM - 1e-9;
    controls.zoomOut.disabled = k <= 1 + 1e-9;
    controls.reset.disabled = k <= 1 + 1e-9;
    onZoom(k);
  }

  // Screen pixels -> drawing units, through the SVG's own transform (letterboxing included).
  function toDrawing(clientX, clientY) {
    const ctm = svg.getScreenCTM();
    if (!ctm) return null;
    const p = new DOMPoint(clientX, clientY).matrixTransform(ctm.inverse());
    return { x: p.x, y: p.y };
  }

  function unitsPerPx() {
    const ctm = svg.getScreenCTM();
    return ctm && ctm.a ? 1 / ctm.a : 1;
  }

  // Zoom by ``factor`` keeping the drawing point (ax, ay) where it is on screen.
  function zoomAbout(factor, ax, ay) {
    if (!base) return;
    const next = Math.min(Math.max(k * factor, 1), MAX_ZOOM);
    const f = next / k;
    if (f === 1) return;
    cx = ax + (cx - ax) / f;
    cy = ay + (cy - ay) / f;
    k = next;
    apply();
  }

  const zoomBy = (factor) => zoomAbout(factor, cx, cy);

  function panPx(dxPx, dyPx) {
    const u = unitsPerPx();
    cx -= dxPx * u;
    cy -= dyPx * u;
    apply();
  }

  svg.addEventListener("wheel", (event) => {
    if (!base) return;
    event.preventDefault(); // the wheel zooms the map, not the page
    const lines = event.deltaMode === 1 ? 16 : event.deltaMode === 2 ? 400 : 1;
    const at = toDrawing(event.clientX, event.clientY);
    if (at) zoomAbout(Math.exp(-event.deltaY * lines * WHEEL_RATE), at.x, at.y);
  }, { passive: false });

  svg.addEventListener("pointerdown", (event) => {
    if (!base || event.button !== 0) return;
    press = { id: event.pointerId, x: event.clientX, y: event.clientY, cx, cy, dragging: false };
  });
  svg.addEventListener("pointermove", (event) => {
    if (!press || event.pointerId !== press.id) return;
    const dx = event.clientX - press.x, dy = event.clientY - press.y;
    if (!press.dragging) {
      if (Math.hypot(dx, dy) < DRAG_PX) return;
      press.dragging = true;
      svg.setPointerCapture(event.pointerId);
      svg.classList.add("dragging");
    }
    const u = unitsPerPx();
    cx = press.cx - dx * u;
    cy = press.cy - dy * u;
    apply();
  });
  function release(event) {
    if (!press || event.pointerId !== press.id) return;
    if (press.dragging) {
      suppressClick = true; // the click that ends a drag opens nothing
      setTimeout(() => { suppressClick = false; }, 0);
      svg.classList.remove("dragging");
    }
    press = null;
  }
  svg.addEventListener("pointerup", release);
  svg.addEventListener("pointercancel", release);
  svg.addEventListener("click", (event) => {
    if (suppressClick) { event.stopPropagation(); event.preventDefault(); suppressClick = false; }
  }, true);

  svg.addEventListener("keydown", (event) => {
    if (!base || event.altKey || event.ctrlKey || event.metaKey) return;
    const view = (base.w / k) * KEY_PAN / unitsPerPx();
    const moves = {
      "+": () => zoomBy(STEP), "=": () => zoomBy(STEP), "-": () => zoomBy(1 / STEP),
      "0": () => reset(), ArrowLeft: () => panPx(view, 0), ArrowRight: () => panPx(-view, 0),
      ArrowUp: () => panPx(0, view), ArrowDown: () => panPx(0, -view),
    };
    const move = moves[event.key];
    if (!move) return;
    event.preventDefault();
    move();
  });

  controls.zoomIn.addEventListener("click", () => zoomBy(STEP));
  controls.zoomOut.addEventListener("click", () => zoomBy(1 / STEP));
  controls.reset.addEventListener("click", () => reset());

  function reset() {
    if (!base) return;
    k = 1;
    cx = base.x + base.w / 2;
    cy = base.y + base.h / 2;
    apply();
  }

  return {
    // A new drawing (the map re-read): its whole extent, seen whole.
    setBase(x, y, w, h) {
      base = { x, y, w, h };
      reset();
    },
    // Bring a drawing point into view (centred) without changing the zoom.
    centreOn(x, y) {
      if (!base || k <= 1) return;
      cx = x;
      cy = y;
      apply();
    },
    scale: () => k,
  };
}
