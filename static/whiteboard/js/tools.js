// The drawing tools. Each gets begin/move/end with board coordinates, may show
// what it is doing on the overlay, and ends in at most one op sent through
// `app.commit(msg)` (add, update or delete). Drawing tools also send drafts so
// others watch the shape grow.

import {
  bbox,
  boxesIntersect,
  boxOf,
  drawElement,
  isBoxed,
  moved,
  NOTE_MAX,
  NOTE_MIN,
  resizeBox,
  round,
  unionBox,
} from "./shapes.js";
import { newId } from "./store.js";

const MIN_STEP_PX = 1.5; // pen points closer than this on screen are dropped
const HIT_PX = 6;
const HANDLE_PX = 8; // the side of a resize handle on screen

function style(app) {
  return { color: app.color(), width: app.width(), fill: null, opacity: 1 };
}

/** Evenly thin a point list to at most `max` points, keeping both ends. */
export function thin(points, max) {
  if (points.length <= max) return points;
  const out = [];
  const step = (points.length - 1) / (max - 1);
  for (let i = 0; i < max; i++) out.push(points[Math.round(i * step)]);
  return out;
}

class PenTool {
  constructor(app) {
    this.app = app;
    this.el = null;
  }

  begin([x, y]) {
    this.el = { id: newId(), kind: "stroke", x: round(x), y: round(y), points: [[0, 0]], ...style(this.app) };
    this.app.draft(this.el);
  }

  move([x, y]) {
    const el = this.el;
    const [lx, ly] = el.points[el.points.length - 1];
    const min = MIN_STEP_PX / this.app.viewport.scale;
    if (Math.hypot(x - el.x - lx, y - el.y - ly) < min) return;
    this.el = { ...el, points: [...el.points, [round(x - el.x), round(y - el.y)]] };
    this.app.draft(this.el);
  }

  end() {
    const el = this.el;
    this.el = null;
    if (!el) return;
    const points =
      el.points.length === 1
        ? [
            [0, 0],
            [0, 0],
          ]
        : thin(el.points, this.app.limits().max_points);
    this.app.commit({ type: "add", cid: newId(), element: { ...el, points } });
  }

  cancel() {
    if (this.el) this.app.draft(null);
    this.el = null;
  }

  drawOverlay(ctx) {
    if (this.el) drawElement(ctx, this.el);
  }
}

/** Line, arrow, rectangle and ellipse: press, drag, release. */
class ShapeTool extends PenTool {
  constructor(app, kind) {
    super(app);
    this.kind = kind;
  }

  begin([x, y]) {
    this.start = [round(x), round(y)];
    this.el = null;
  }

  shape([x, y]) {
    const [sx, sy] = this.start;
    if (!this.id) this.id = newId();
    const base = { id: this.id, kind: this.kind, x: sx, y: sy, ...style(this.app) };
    if (this.kind === "rect" || this.kind === "ellipse")
      return { ...base, w: round(x - sx), h: round(y - sy) };
    return {
      ...base,
      points: [
        [0, 0],
        [round(x - sx), round(y - sy)],
      ],
    };
  }

  move(point, event) {
    if (!this.start) return;
    this.el = this.shape(event?.shiftKey ? this.snap(point) : point);
    this.app.draft(this.el);
  }

  /** Shift: squares and circles, lines at multiples of 45 degrees. */
  snap([x, y]) {
    const [sx, sy] = this.start;
    const [dx, dy] = [x - sx, y - sy];
    if (this.kind === "rect" || this.kind === "ellipse") {
      const side = Math.max(Math.abs(dx), Math.abs(dy));
      return [sx + side * (Math.sign(dx) || 1), sy + side * (Math.sign(dy) || 1)];
    }
    const angle = Math.round(Math.atan2(dy, dx) / (Math.PI / 4)) * (Math.PI / 4);
    const length = Math.hypot(dx, dy);
    return [sx + length * Math.cos(angle), sy + length * Math.sin(angle)];
  }

  end() {
    const el = this.el;
    this.el = null;
    this.start = null;
    this.id = null;
    if (!el) return;
    const size = el.points ? Math.hypot(...el.points[1]) : Math.abs(el.w) + Math.abs(el.h);
    if (size * this.app.viewport.scale < 2) {
      this.app.draft(null);
      return;
    }
    this.app.commit({ type: "add", cid: newId(), element: el });
  }

  cancel() {
    super.cancel();
    this.start = null;
    this.id = null;
  }
}

/** Erases every element the pointer touches; one delete op per gesture. */
class EraserTool {
  constructor(app) {
    this.app = app;
    this.ids = null;
  }

  begin(point) {
    this.ids = new Set();
    this.last = point;
    this.move(point);
  }

  /** Test points along the way from the last position, so a fast swipe misses nothing. */
  move([x, y]) {
    if (!this.ids) return;
    const tolerance = HIT_PX / this.app.viewport.scale;
    const [lx, ly] = this.last;
    const steps = Math.min(200, Math.ceil(Math.hypot(x - lx, y - ly) / tolerance) || 1);
    for (let i = 1; i <= steps; i++)
      this.eraseAt(lx + ((x - lx) * i) / steps, ly + ((y - ly) * i) / steps, tolerance);
    this.last = [x, y];
  }

  eraseAt(x, y, tolerance) {
    const hit = this.app.topmostAt(x, y, tolerance, this.ids);
    if (!hit) return;
    this.ids.add(hit.id);
    this.app.renderer.hidden.add(hit.id);
    this.app.renderer.invalidate();
  }

  end() {
    const ids = this.ids;
    this.ids = null;
    if (ids?.size) this.app.commit({ type: "delete", cid: newId(), ids: [...ids] });
    this.app.renderer.hidden.clear();
    this.app.renderer.invalidate();
  }

  cancel() {
    this.ids = null;
    this.app.renderer.hidden.clear();
    this.app.renderer.invalidate();
  }

  drawOverlay() {}
}

/** The corners of a boxed element, as [name, x, y]. */
function corners(el) {
  const [x0, y0, x1, y1] = boxOf(el);
  return [
    ["nw", x0, y0],
    ["ne", x1, y0],
    ["sw", x0, y1],
    ["se", x1, y1],
  ];
}

/**
 * The element's box after a handle drag: images keep their aspect ratio unless Shift is
 * held, other boxes keep it only with Shift; notes stay within the protocol's sizes.
 */
export function resizedElement(el, handle, point, shift) {
  const keepAspect = el.kind === "image" ? !shift : shift;
  const sides = el.kind === "note" ? { min: NOTE_MIN, max: NOTE_MAX } : { min: 1 };
  return { ...el, ...resizeBox(el, handle, point, { keepAspect, ...sides }) };
}

/**
 * Click to select (Shift adds), drag to move, drag on empty space to box-select;
 * one selected box (rectangle, ellipse, note, image) has corner handles to resize it.
 */
class SelectTool {
  constructor(app) {
    this.app = app;
    this.drag = null;
  }

  /** The one selected element that can be resized, or null. */
  resizable() {
    if (this.app.selection.size !== 1) return null;
    const el = this.app.store.get([...this.app.selection][0]);
    return el && isBoxed(el) ? el : null;
  }

  handleAt([x, y]) {
    const el = this.resizable();
    if (!el) return null;
    const reach = HANDLE_PX / this.app.viewport.scale;
    const corner = corners(el).find(([, cx, cy]) => Math.abs(x - cx) <= reach && Math.abs(y - cy) <= reach);
    return corner ? { el, handle: corner[0] } : null;
  }

  begin([x, y], event) {
    const grip = this.handleAt([x, y]);
    if (grip) {
      this.drag = { resize: grip.handle, el: grip.el, from: [x, y], to: [x, y], shift: event.shiftKey };
      this.app.renderer.hidden.add(grip.el.id);
      this.app.renderer.invalidate();
      return;
    }
    const tolerance = HIT_PX / this.app.viewport.scale;
    const hit = this.app.topmostAt(x, y, tolerance);
    const sel = this.app.selection;
    if (!hit) {
      if (!event.shiftKey) sel.clear();
      this.drag = { band: true, from: [x, y], to: [x, y] };
    } else {
      if (!sel.has(hit.id)) {
        if (!event.shiftKey) sel.clear();
        sel.add(hit.id);
      }
      this.drag = { band: false, from: [x, y], to: [x, y] };
      for (const id of sel) this.app.renderer.hidden.add(id);
      this.app.renderer.invalidate();
    }
    this.app.selectionChanged();
  }

  move(point, event) {
    if (!this.drag) return;
    this.drag.to = point;
    this.drag.shift = Boolean(event?.shiftKey);
    this.app.overlayChanged();
  }

  end() {
    const drag = this.drag;
    this.drag = null;
    if (!drag) return;
    if (drag.resize) this.resize(drag);
    else if (drag.band) this.selectBand(drag);
    else this.moveSelection(drag);
    this.app.renderer.hidden.clear();
    this.app.renderer.invalidate();
    this.app.selectionChanged();
  }

  selectBand({ from, to }) {
    const band = [
      Math.min(from[0], to[0]),
      Math.min(from[1], to[1]),
      Math.max(from[0], to[0]),
      Math.max(from[1], to[1]),
    ];
    if (band[2] - band[0] + band[3] - band[1] === 0) return;
    for (const el of this.app.store.list()) {
      if (boxesIntersect(bbox(el), band)) this.app.selection.add(el.id);
    }
  }

  moveSelection({ from, to }) {
    const dx = to[0] - from[0];
    const dy = to[1] - from[1];
    if (Math.hypot(dx, dy) * this.app.viewport.scale < 1) return;
    for (const id of this.app.selection) {
      const el = this.app.store.get(id);
      if (!el) continue;
      const next = moved(el, dx, dy);
      this.app.commit({ type: "update", cid: newId(), id, set: { x: next.x, y: next.y } });
    }
  }

  /** One update of x, y, w and h when the handle was dragged at all. */
  resize(drag) {
    const el = this.app.store.get(drag.el.id);
    if (!el) return;
    const next = resizedElement(el, drag.resize, drag.to, drag.shift);
    const set = {};
    for (const key of ["x", "y", "w", "h"]) if (next[key] !== el[key]) set[key] = next[key];
    if (Object.keys(set).length) this.app.commit({ type: "update", cid: newId(), id: el.id, set });
  }

  cancel() {
    this.drag = null;
    this.app.renderer.hidden.clear();
    this.app.renderer.invalidate();
  }

  /** The selected elements as they show now: moved or resized by the drag in progress. */
  shownSelection() {
    const drag = this.drag;
    const dx = drag && !drag.band && !drag.resize ? drag.to[0] - drag.from[0] : 0;
    const dy = drag && !drag.band && !drag.resize ? drag.to[1] - drag.from[1] : 0;
    const selected = [...this.app.selection].map((id) => this.app.store.get(id)).filter(Boolean);
    return selected.map((el) => {
      if (drag?.resize && el.id === drag.el.id) return resizedElement(el, drag.resize, drag.to, drag.shift);
      return dx || dy ? moved(el, dx, dy) : el;
    });
  }

  drawOverlay(ctx) {
    const drag = this.drag;
    const shown = this.shownSelection();
    for (const el of shown) if (this.app.renderer.hidden.has(el.id)) drawElement(ctx, el);
    const scale = this.app.viewport.scale;
    outline(ctx, unionBox(shown), scale);
    if (shown.length === 1 && isBoxed(shown[0]) && !drag?.band) handles(ctx, shown[0], scale);
    if (drag?.band) {
      const [a, b] = [drag.from, drag.to];
      outline(
        ctx,
        [Math.min(a[0], b[0]), Math.min(a[1], b[1]), Math.max(a[0], b[0]), Math.max(a[1], b[1])],
        this.app.viewport.scale,
      );
    }
  }
}

function handles(ctx, el, scale) {
  const side = HANDLE_PX / scale;
  ctx.globalAlpha = 1;
  ctx.fillStyle = "#ffffff";
  ctx.strokeStyle = "#0969da";
  ctx.lineWidth = 1 / scale;
  for (const [, x, y] of corners(el)) {
    ctx.fillRect(x - side / 2, y - side / 2, side, side);
    ctx.strokeRect(x - side / 2, y - side / 2, side, side);
  }
}

function outline(ctx, box, scale) {
  if (!box) return;
  ctx.globalAlpha = 1;
  ctx.strokeStyle = "#0969da";
  ctx.lineWidth = 1 / scale;
  ctx.setLineDash([5 / scale, 4 / scale]);
  ctx.strokeRect(box[0], box[1], box[2] - box[0], box[3] - box[1]);
  ctx.setLineDash([]);
}

/** Every tool by name; `extra` adds the tools made elsewhere (text, note). */
export function makeTools(app, textTool, extra = {}) {
  const pen = new PenTool(app);
  return {
    ...extra,
    pen,
    line: new ShapeTool(app, "line"),
    arrow: new ShapeTool(app, "arrow"),
    rect: new ShapeTool(app, "rect"),
    ellipse: new ShapeTool(app, "ellipse"),
    text: textTool,
    eraser: new EraserTool(app),
    select: new SelectTool(app),
  };
}
