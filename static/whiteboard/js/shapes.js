// Geometry of one element: its path, bounding box, hit test and drawing.
// Elements are the protocol's objects, never mutated: a change makes a new
// object, so the derived geometry is cached per object in a WeakMap.

import { NOTE_SIDE_MAX, NOTE_SIDE_MIN } from "./constants.js";
import { assetImage } from "./images.js";

export const TEXT_FONT = "system-ui, -apple-system, 'Segoe UI', sans-serif";
export const LINE_HEIGHT = 1.25;
// Notes (PROTOCOL.md 1.1): the text keeps this far from the note's edges.
export const NOTE_PAD = 12;
export const NOTE_MIN = NOTE_SIDE_MIN;
export const NOTE_MAX = NOTE_SIDE_MAX;
const NOTE_RADIUS = 6;
const IMAGE_LOADING = "#e6e8eb";
const BOXED = new Set(["rect", "ellipse", "note", "image"]);

const cache = new WeakMap();
let measureCtx = null;

function measure() {
  if (!measureCtx) measureCtx = document.createElement("canvas").getContext("2d");
  return measureCtx;
}

// The style fields each kind has (PROTOCOL.md 1.1): a note has no width, an image only opacity.
const KIND_STYLE = { note: ["color", "fill", "opacity"], image: ["opacity"] };
const STYLE = ["color", "width", "fill", "opacity"];

/** Whether `field` (color, width, fill, opacity) is a style field of the element's kind. */
export function takesStyle(el, field) {
  return (KIND_STYLE[el.kind] || STYLE).includes(field);
}

/** Whether the element is a box (x, y, w, h) that the select tool can resize. */
export function isBoxed(el) {
  return BOXED.has(el.kind);
}

/** The box of a boxed element as [minX, minY, maxX, maxY], whatever the signs of w and h. */
export function boxOf(el) {
  const [x1, y1] = [el.x + el.w, el.y + el.h];
  return [Math.min(el.x, x1), Math.min(el.y, y1), Math.max(el.x, x1), Math.max(el.y, y1)];
}

/**
 * Lines of `text` that fit `maxWidth` as measured by `widthOf(string)`: words wrap at spaces,
 * a word longer than a line is cut, and newlines are kept.
 */
export function wrapText(text, maxWidth, widthOf) {
  const lines = [];
  for (const paragraph of String(text).split("\n")) {
    let line = "";
    for (const word of paragraph.split(/(?<= )/)) {
      if (widthOf(line + word) <= maxWidth || !line) line += word;
      else {
        lines.push(line.trimEnd());
        line = word;
      }
      while (widthOf(line.trimEnd()) > maxWidth && Array.from(line).length > 1) {
        const [head, rest] = cutToFit(line, maxWidth, widthOf);
        lines.push(head);
        line = rest;
      }
    }
    lines.push(line.trimEnd());
  }
  return lines;
}

/** The longest head of `line` (at least one character) that fits, and the rest. */
function cutToFit(line, maxWidth, widthOf) {
  const chars = Array.from(line);
  let n = 1;
  while (n < chars.length && widthOf(chars.slice(0, n + 1).join("")) <= maxWidth) n++;
  return [chars.slice(0, n).join(""), chars.slice(n).join("")];
}

/** The lines a note shows, wrapped inside its box; cached per element. */
export function noteLines(el) {
  const geo = geometry(el);
  if (!geo.lines) {
    const ctx = measure();
    ctx.font = `${el.size}px ${TEXT_FONT}`;
    geo.lines = wrapText(el.text, Math.max(1, el.w - 2 * NOTE_PAD), (s) => ctx.measureText(s).width);
  }
  return geo.lines;
}

/**
 * The box of a boxed element after dragging its `handle` ("nw", "ne", "sw", "se") to `point`:
 * the opposite corner stays; `keepAspect` keeps the width to height ratio; each side stays
 * within [min, max]. Returns {x, y, w, h} with the element's own signs of w and h (a flipped
 * image stays flipped).
 */
export function resizeBox(el, handle, [px, py], { keepAspect = false, min = 1, max = Infinity } = {}) {
  const [x0, y0, x1, y1] = boxOf(el);
  const fx = handle.includes("w") ? x1 : x0;
  const fy = handle.includes("n") ? y1 : y0;
  const dirX = handle.includes("w") ? -1 : 1;
  const dirY = handle.includes("n") ? -1 : 1;
  const clamp = (n) => Math.min(max, Math.max(min, n));
  let w = clamp((px - fx) * dirX);
  let h = clamp((py - fy) * dirY);
  const [w0, h0] = [x1 - x0, y1 - y0];
  if (keepAspect && w0 > 0 && h0 > 0) {
    const k = Math.max(w / w0, h / h0);
    const lo = Math.max(min / w0, min / h0);
    const hi = Math.min(max / w0, max / h0);
    const s = Math.min(hi, Math.max(lo, k));
    [w, h] = [w0 * s, h0 * s];
  }
  const left = dirX > 0 ? fx : fx - w;
  const top = dirY > 0 ? fy : fy - h;
  return {
    x: round(el.w < 0 ? left + w : left),
    y: round(el.h < 0 ? top + h : top),
    w: round(el.w < 0 ? -w : w),
    h: round(el.h < 0 ? -h : h),
  };
}

/** Absolute points of a stroke, line or arrow. */
export function absPoints(el) {
  return el.points.map(([px, py]) => [el.x + px, el.y + py]);
}

export function textLines(el) {
  return String(el.text).split("\n");
}

/** The commands of a smoothed freehand stroke: quadratic curves through midpoints. */
export function strokeCommands(pts) {
  if (pts.length < 3) return pts.map((p, i) => [i ? "L" : "M", p]);
  const cmds = [["M", pts[0]]];
  for (let i = 1; i < pts.length - 1; i++) {
    const [x1, y1] = pts[i];
    const [x2, y2] = pts[i + 1];
    cmds.push(["Q", [x1, y1], [(x1 + x2) / 2, (y1 + y2) / 2]]);
  }
  cmds.push(["L", pts[pts.length - 1]]);
  return cmds;
}

/** The two barbs of an arrow head at the last point, coming from the one before. */
export function arrowHead(el) {
  const pts = absPoints(el);
  const [tx, ty] = pts[pts.length - 1];
  let [fx, fy] = pts[pts.length - 2] || [tx - 1, ty];
  if (fx === tx && fy === ty) fx -= 1;
  const angle = Math.atan2(ty - fy, tx - fx);
  const len = Math.max(10, el.width * 3);
  const barb = (a) => [tx - len * Math.cos(angle + a), ty - len * Math.sin(angle + a)];
  return [barb(0.45), [tx, ty], barb(-0.45)];
}

function buildPath(el) {
  const path = new Path2D();
  if (el.kind === "stroke" || el.kind === "line" || el.kind === "arrow") {
    const cmds =
      el.kind === "stroke" ? strokeCommands(absPoints(el)) : absPoints(el).map((p, i) => [i ? "L" : "M", p]);
    for (const [op, a, b] of cmds) {
      if (op === "M") path.moveTo(a[0], a[1]);
      else if (op === "L") path.lineTo(a[0], a[1]);
      else path.quadraticCurveTo(a[0], a[1], b[0], b[1]);
    }
    if (el.points.length === 1) path.lineTo(el.x + el.points[0][0] + 0.01, el.y + el.points[0][1]);
    if (el.kind === "arrow") {
      const [a, tip, b] = arrowHead(el);
      path.moveTo(a[0], a[1]);
      path.lineTo(tip[0], tip[1]);
      path.lineTo(b[0], b[1]);
    }
  } else if (el.kind === "rect") {
    path.rect(el.x, el.y, el.w, el.h);
  } else if (el.kind === "ellipse") {
    path.ellipse(el.x + el.w / 2, el.y + el.h / 2, Math.abs(el.w / 2), Math.abs(el.h / 2), 0, 0, 2 * Math.PI);
  }
  return path;
}

function textBox(el) {
  const ctx = measure();
  ctx.font = `${el.size}px ${TEXT_FONT}`;
  const lines = textLines(el);
  const w = Math.max(...lines.map((line) => ctx.measureText(line).width), el.size * 0.3);
  return [el.x, el.y, el.x + w, el.y + lines.length * el.size * LINE_HEIGHT];
}

function computeBox(el) {
  if (el.kind === "text") return textBox(el);
  if (el.kind === "note" || el.kind === "image") return boxOf(el);
  const pad = el.width / 2 + (el.kind === "arrow" ? Math.max(10, el.width * 3) : 0);
  let box;
  if (el.points) {
    const pts = absPoints(el);
    box = [Infinity, Infinity, -Infinity, -Infinity];
    for (const [px, py] of pts) {
      box = [Math.min(box[0], px), Math.min(box[1], py), Math.max(box[2], px), Math.max(box[3], py)];
    }
  } else {
    box = [
      Math.min(el.x, el.x + el.w),
      Math.min(el.y, el.y + el.h),
      Math.max(el.x, el.x + el.w),
      Math.max(el.y, el.y + el.h),
    ];
  }
  return [box[0] - pad, box[1] - pad, box[2] + pad, box[3] + pad];
}

function geometry(el) {
  let geo = cache.get(el);
  if (!geo) {
    geo = { box: computeBox(el), path: null };
    cache.set(el, geo);
  }
  return geo;
}

/** [minX, minY, maxX, maxY] in board coordinates, stroke width included. */
export function bbox(el) {
  return geometry(el).box;
}

export function path(el) {
  const geo = geometry(el);
  if (!geo.path && el.kind !== "text" && el.kind !== "note" && el.kind !== "image") geo.path = buildPath(el);
  return geo.path;
}

/** Draw one element on a context whose transform maps board coordinates. */
export function drawElement(ctx, el, cached = true) {
  ctx.globalAlpha = el.opacity ?? 1;
  if (el.kind === "text") {
    ctx.fillStyle = el.color;
    ctx.font = `${el.size}px ${TEXT_FONT}`;
    ctx.textBaseline = "top";
    textLines(el).forEach((line, i) => {
      ctx.fillText(line, el.x, el.y + i * el.size * LINE_HEIGHT);
    });
    return;
  }
  if (el.kind === "note") {
    drawNote(ctx, el);
    return;
  }
  if (el.kind === "image") {
    drawImage(ctx, el);
    return;
  }
  const p = cached ? path(el) : buildPath(el);
  if (el.fill && (el.kind === "rect" || el.kind === "ellipse")) {
    ctx.fillStyle = el.fill;
    ctx.fill(p);
  }
  ctx.strokeStyle = el.color;
  ctx.lineWidth = el.width;
  ctx.lineCap = "round";
  ctx.lineJoin = "round";
  ctx.stroke(p);
}

/** A rounded rectangle's outline as a new path. */
export function roundedRect(x, y, w, h, r) {
  const p = new Path2D();
  const k = Math.max(0, Math.min(r, w / 2, h / 2));
  p.moveTo(x + k, y);
  p.arcTo(x + w, y, x + w, y + h, k);
  p.arcTo(x + w, y + h, x, y + h, k);
  p.arcTo(x, y + h, x, y, k);
  p.arcTo(x, y, x + w, y, k);
  p.closePath();
  return p;
}

/** A sticky note: its colour with a soft shadow, then its text wrapped and clipped to the box. */
function drawNote(ctx, el) {
  const box = roundedRect(el.x, el.y, el.w, el.h, NOTE_RADIUS);
  ctx.save();
  ctx.shadowColor = "rgba(0, 0, 0, 0.18)";
  ctx.shadowBlur = 8;
  ctx.shadowOffsetY = 2;
  ctx.fillStyle = el.fill;
  ctx.fill(box);
  ctx.restore();
  ctx.save();
  ctx.clip(box);
  ctx.fillStyle = el.color || "#1f2328";
  ctx.font = `${el.size}px ${TEXT_FONT}`;
  ctx.textBaseline = "top";
  const step = el.size * LINE_HEIGHT;
  noteLines(el).forEach((line, i) => {
    ctx.fillText(line, el.x + NOTE_PAD, el.y + NOTE_PAD + i * step);
  });
  ctx.restore();
}

/** An image once its file is loaded (flipped for a negative w or h); a grey box until then. */
function drawImage(ctx, el) {
  const img = assetImage(el.asset);
  const [x0, y0, x1, y1] = boxOf(el);
  if (!img) {
    ctx.fillStyle = IMAGE_LOADING;
    ctx.fillRect(x0, y0, x1 - x0, y1 - y0);
    return;
  }
  ctx.save();
  ctx.translate(el.x, el.y);
  ctx.scale(el.w < 0 ? -1 : 1, el.h < 0 ? -1 : 1);
  ctx.drawImage(img, 0, 0, Math.abs(el.w), Math.abs(el.h));
  ctx.restore();
}

function segmentDistance(px, py, [ax, ay], [bx, by]) {
  const dx = bx - ax;
  const dy = by - ay;
  const len2 = dx * dx + dy * dy;
  const t = len2 ? Math.max(0, Math.min(1, ((px - ax) * dx + (py - ay) * dy) / len2)) : 0;
  return Math.hypot(px - (ax + t * dx), py - (ay + t * dy));
}

function nearPolyline(pts, px, py, reach) {
  if (pts.length === 1) return Math.hypot(px - pts[0][0], py - pts[0][1]) <= reach;
  for (let i = 1; i < pts.length; i++) {
    if (segmentDistance(px, py, pts[i - 1], pts[i]) <= reach) return true;
  }
  return false;
}

function hitEllipse(el, px, py, reach) {
  const rx = Math.abs(el.w / 2) || 0.001;
  const ry = Math.abs(el.h / 2) || 0.001;
  const nx = (px - (el.x + el.w / 2)) / rx;
  const ny = (py - (el.y + el.h / 2)) / ry;
  const d = Math.hypot(nx, ny);
  if (el.fill && d <= 1) return true;
  return Math.abs(d - 1) * Math.min(rx, ry) <= reach;
}

function hitRect(el, px, py, reach) {
  const [x0, y0, x1, y1] = [
    Math.min(el.x, el.x + el.w),
    Math.min(el.y, el.y + el.h),
    Math.max(el.x, el.x + el.w),
    Math.max(el.y, el.y + el.h),
  ];
  const inside = px >= x0 && px <= x1 && py >= y0 && py <= y1;
  if (el.fill && inside) return true;
  const corners = [
    [x0, y0],
    [x1, y0],
    [x1, y1],
    [x0, y1],
    [x0, y0],
  ];
  return nearPolyline(corners, px, py, reach);
}

/** Whether a point (board coordinates) touches the element, `tolerance` around it. */
export function hitTest(el, px, py, tolerance) {
  const [x0, y0, x1, y1] = bbox(el);
  if (px < x0 - tolerance || px > x1 + tolerance || py < y0 - tolerance || py > y1 + tolerance) return false;
  if (el.kind === "text" || el.kind === "note" || el.kind === "image") return true;
  const reach = el.width / 2 + tolerance;
  if (el.kind === "rect") return hitRect(el, px, py, reach);
  if (el.kind === "ellipse") return hitEllipse(el, px, py, reach);
  const pts = absPoints(el);
  if (el.kind === "arrow" && nearPolyline(arrowHead(el), px, py, reach)) return true;
  return nearPolyline(pts, px, py, reach);
}

export function boxesIntersect(a, b) {
  return a[0] <= b[2] && a[2] >= b[0] && a[1] <= b[3] && a[3] >= b[1];
}

/** The box around many elements, or null for none. */
export function unionBox(elements) {
  let box = null;
  for (const el of elements) {
    const b = bbox(el);
    box = box
      ? [Math.min(box[0], b[0]), Math.min(box[1], b[1]), Math.max(box[2], b[2]), Math.max(box[3], b[3])]
      : [...b];
  }
  return box;
}

/** The element moved by (dx, dy): only x and y change, whatever the kind. */
export function moved(el, dx, dy) {
  return { ...el, x: round(el.x + dx), y: round(el.y + dy) };
}

export function round(n) {
  return Math.round(n * 100) / 100;
}
