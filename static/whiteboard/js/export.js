// Export the board as PNG (drawn with the same code as the screen) or SVG
// (built as text; every user string is XML-escaped, every colour re-checked).
// Images are loaded before the PNG is drawn; the SVG embeds them as data: URLs,
// so it stands alone.

import { assetDataUrl, loadAsset } from "./images.js";
import {
  absPoints,
  arrowHead,
  boxOf,
  drawElement,
  LINE_HEIGHT,
  NOTE_PAD,
  noteLines,
  strokeCommands,
  TEXT_FONT,
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

function assetIds(elements) {
  return [...new Set(elements.filter((el) => el.kind === "image").map((el) => el.asset))];
}

/** Download the board as a PNG, once every image in it has loaded (or failed to). */
export async function exportPng(elements, slug) {
  await Promise.all(assetIds(elements).map(loadAsset));
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

function svgElement(el, i, images) {
  if (el.kind === "text") return svgText(el);
  if (el.kind === "note") return svgNote(el, i);
  if (el.kind === "image") return svgImage(el, images.get(el.asset));
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

/** A note: its rounded box in its colour, its wrapped text clipped to the box. */
function svgNote(el, i) {
  const box = `x="${num(el.x)}" y="${num(el.y)}" width="${num(el.w)}" height="${num(el.h)}" rx="6"`;
  const step = el.size * LINE_HEIGHT;
  const lines = noteLines(el).map(
    (line, n) =>
      `<tspan x="${num(el.x + NOTE_PAD)}" y="${num(el.y + NOTE_PAD + n * step)}">${escapeXml(line)}</tspan>`,
  );
  return [
    `<g opacity="${num(el.opacity ?? 1)}">`,
    `<clipPath id="note-clip-${i}"><rect ${box}/></clipPath>`,
    `<rect ${box} fill="${color(el.fill)}"/>`,
    `<text clip-path="url(#note-clip-${i})" font-family="${escapeXml(TEXT_FONT)}" font-size="${num(el.size)}" fill="${color(el.color)}" dominant-baseline="text-before-edge" xml:space="preserve">${lines.join("")}</text>`,
    `</g>`,
  ].join("");
}

/** An image embedded as a data: URL (flipped for a negative w or h); a grey box without one. */
function svgImage(el, dataUrl) {
  if (!dataUrl) {
    const [x0, y0, x1, y1] = boxOf(el);
    return `<rect x="${num(x0)}" y="${num(y0)}" width="${num(x1 - x0)}" height="${num(y1 - y0)}" fill="#e6e8eb"/>`;
  }
  const flip = `translate(${num(el.x)} ${num(el.y)}) scale(${el.w < 0 ? -1 : 1} ${el.h < 0 ? -1 : 1})`;
  return `<image href="${escapeXml(dataUrl)}" x="0" y="0" width="${num(Math.abs(el.w))}" height="${num(Math.abs(el.h))}" preserveAspectRatio="none" opacity="${num(el.opacity ?? 1)}" transform="${flip}"/>`;
}

/** The SVG text of the board; `images` maps asset ids to data: URLs. */
export function svgDocument(elements, title, images = new Map()) {
  const [x, y, w, h] = area(elements);
  return [
    `<?xml version="1.0" encoding="UTF-8"?>`,
    `<svg xmlns="http://www.w3.org/2000/svg" viewBox="${num(x)} ${num(y)} ${num(w)} ${num(h)}" width="${num(w)}" height="${num(h)}">`,
    `<title>${escapeXml(title)}</title>`,
    `<rect x="${num(x)}" y="${num(y)}" width="${num(w)}" height="${num(h)}" fill="#ffffff"/>`,
    ...elements.map((el, i) => svgElement(el, i, images)),
    `</svg>`,
  ].join("\n");
}

/** Download the board as an SVG, its images fetched and embedded first. */
export async function exportSvg(elements, slug, title) {
  const ids = assetIds(elements);
  const urls = await Promise.all(ids.map((id) => assetDataUrl(id).catch(() => null)));
  const images = new Map(ids.map((id, i) => [id, urls[i]]));
  download(new Blob([svgDocument(elements, title, images)], { type: "image/svg+xml" }), `${slug}.svg`);
}
