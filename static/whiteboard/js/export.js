// Export the board as PNG (drawn with the same code as the screen) or SVG
// (built as text; every user string is XML-escaped, every colour re-checked).

import {
  LINE_HEIGHT,
  TEXT_FONT,
  absPoints,
  arrowHead,
  drawElement,
  strokeCommands,
  textLines,
  unionBox,
} from "./shapes.js";

const MARGIN = 20;
const MAX_PNG_SIDE = 8192;
const COLOR_RE = /^#[0-9a-fA-F]{6}$/;

function area(elements) {
  const box = unionBox(elements) || [0, 0, 200, 100];
  return [box[0] - MARGIN, box[1] - MARGIN, box[2] - box[0] + 2 * MARGIN, box[3] - box[1] + 2 * MARGIN];
}

function download(blob, filename) {
  const link = document.createElement("a");
  link.href = URL.createObjectURL(blob);
  link.download = filename;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 10000);
}

export function exportPng(elements, slug) {
  const [x, y, w, h] = area(elements);
  const scale = Math.min(2, MAX_PNG_SIDE / Math.max(w, h));
  const canvas = document.createElement("canvas");
  canvas.width = Math.max(1, Math.ceil(w * scale));
  canvas.height = Math.max(1, Math.ceil(h * scale));
  const ctx = canvas.getContext("2d");
  ctx.fillStyle = "#ffffff";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  ctx.setTransform(scale, 0, 0, scale, -x * scale, -y * scale);
  for (const el of elements) drawElement(ctx, el);
  canvas.toBlob((blob) => download(blob, `${slug}.png`), "image/png");
}

/** Text made safe for XML content and attribute values. */
export function escapeXml(text) {
  return String(text)
    .replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]/g, "")
    .replace(/&/g, "&amp;")
    .replace(/</g, "&lt;")
    .replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;")
    .replace(/'/g, "&apos;");
}

const num = (n) => String(Math.round(Number(n) * 100) / 100);
const color = (c) => (COLOR_RE.test(c) ? c : "#000000");

function styleAttrs(el, filled) {
  const fill = filled && el.fill ? color(el.fill) : "none";
  return `stroke="${color(el.color)}" stroke-width="${num(el.width)}" fill="${fill}" opacity="${num(el.opacity ?? 1)}" stroke-linecap="round" stroke-linejoin="round"`;
}

function pathData(cmds) {
  return cmds
    .map(([op, a, b]) =>
      op === "Q" ? `Q${num(a[0])} ${num(a[1])} ${num(b[0])} ${num(b[1])}` : `${op}${num(a[0])} ${num(a[1])}`,
    )
    .join(" ");
}

function svgElement(el) {
  if (el.kind === "text") return svgText(el);
  if (el.kind === "rect") {
    const [x, y] = [Math.min(el.x, el.x + el.w), Math.min(el.y, el.y + el.h)];
    return `<rect x="${num(x)}" y="${num(y)}" width="${num(Math.abs(el.w))}" height="${num(Math.abs(el.h))}" ${styleAttrs(el, true)}/>`;
  }
  if (el.kind === "ellipse") {
    return `<ellipse cx="${num(el.x + el.w / 2)}" cy="${num(el.y + el.h / 2)}" rx="${num(Math.abs(el.w / 2))}" ry="${num(Math.abs(el.h / 2))}" ${styleAttrs(el, true)}/>`;
  }
  const pts = absPoints(el);
  let d =
    el.kind === "stroke" ? pathData(strokeCommands(pts)) : pathData(pts.map((p, i) => [i ? "L" : "M", p]));
  if (pts.length === 1 || (pts.length === 2 && pts[0][0] === pts[1][0] && pts[0][1] === pts[1][1]))
    d += " h0.01";
  if (el.kind === "arrow") d += ` ${pathData(arrowHead(el).map((p, i) => [i ? "L" : "M", p]))}`;
  return `<path d="${d}" ${styleAttrs(el, false)}/>`;
}

function svgText(el) {
  const lines = textLines(el).map(
    (line, i) =>
      `<tspan x="${num(el.x)}" y="${num(el.y + i * el.size * LINE_HEIGHT)}">${escapeXml(line)}</tspan>`,
  );
  return `<text font-family="${escapeXml(TEXT_FONT)}" font-size="${num(el.size)}" fill="${color(el.color)}" opacity="${num(el.opacity ?? 1)}" dominant-baseline="text-before-edge" xml:space="preserve">${lines.join("")}</text>`;
}

export function svgDocument(elements, title) {
  const [x, y, w, h] = area(elements);
  return [
    `<?xml version="1.0" encoding="UTF-8"?>`,
    `<svg xmlns="http://www.w3.org/2000/svg" viewBox="${num(x)} ${num(y)} ${num(w)} ${num(h)}" width="${num(w)}" height="${num(h)}">`,
    `<title>${escapeXml(title)}</title>`,
    `<rect x="${num(x)}" y="${num(y)}" width="${num(w)}" height="${num(h)}" fill="#ffffff"/>`,
    ...elements.map(svgElement),
    `</svg>`,
  ].join("\n");
}

export function exportSvg(elements, slug, title) {
  download(new Blob([svgDocument(elements, title)], { type: "image/svg+xml" }), `${slug}.svg`);
}
