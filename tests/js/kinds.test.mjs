// The geometry of the version 1.1 kinds, notes and images (shapes.js, tools.js,
// images.js): their boxes and hit tests, the corner-handle resize (an image keeps
// its aspect ratio, a note its protocol sizes), the text wrapping of a note, the
// style fields each kind takes, and how an uploaded image is fitted to the view.

import "./browser-globals.mjs";
import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { fitSize, refusal } from "../../static/whiteboard/js/images.js";
import { newNote } from "../../static/whiteboard/js/notes.js";
import {
  bbox,
  hitTest,
  isBoxed,
  moved,
  resizeBox,
  takesStyle,
  wrapText,
} from "../../static/whiteboard/js/shapes.js";
import { resizedElement } from "../../static/whiteboard/js/tools.js";

const note = (extra = {}) => ({
  id: "n",
  kind: "note",
  x: 100,
  y: 50,
  w: 200,
  h: 150,
  text: "",
  size: 20,
  fill: "#fff3a3",
  color: "#1f2328",
  opacity: 1,
  ...extra,
});
const image = (extra = {}) => ({
  id: "i",
  kind: "image",
  x: 0,
  y: 0,
  asset: "A".repeat(22),
  w: 400,
  h: 200,
  opacity: 1,
  ...extra,
});
// Every character is 10 units wide: wrapping is then easy to predict.
const mono = (s) => Array.from(s).length * 10;

describe("boxes and hit tests", () => {
  test("a note's box is its x, y, w and h, with no stroke around it", () => {
    assert.deepEqual(bbox(note()), [100, 50, 300, 200]);
  });

  test("a flipped image's box is normalised", () => {
    assert.deepEqual(bbox(image({ x: 400, y: 200, w: -400, h: -200 })), [0, 0, 400, 200]);
  });

  test("a click anywhere inside a note or an image hits it, not outside", () => {
    assert.ok(hitTest(note(), 200, 120, 0));
    assert.ok(hitTest(image(), 390, 190, 0));
    assert.ok(!hitTest(note(), 320, 120, 6));
    assert.ok(!hitTest(image(), 200, 220, 6));
    // The tolerance reaches a little outside, as for other kinds.
    assert.ok(hitTest(note(), 304, 120, 6));
  });

  test("notes and images move like any element and are resizable boxes", () => {
    assert.deepEqual(bbox(moved(note(), 10, -5)), [110, 45, 310, 195]);
    assert.ok(isBoxed(note()) && isBoxed(image()) && isBoxed({ kind: "rect" }));
    assert.ok(!isBoxed({ kind: "stroke" }) && !isBoxed({ kind: "text" }));
  });

  test("a new note is 200 by 200, centred on the click", () => {
    const el = newNote(300, 300, "#fff3a3", "#000000");
    assert.deepEqual([el.x, el.y, el.w, el.h, el.text], [200, 200, 200, 200, ""]);
    assert.equal(el.width, undefined);
  });
});

describe("style fields per kind", () => {
  test("a note takes colour and fill but no width", () => {
    assert.ok(takesStyle(note(), "color") && takesStyle(note(), "fill"));
    assert.ok(!takesStyle(note(), "width"));
  });

  test("an image takes only opacity", () => {
    for (const field of ["color", "width", "fill"]) assert.ok(!takesStyle(image(), field), field);
    assert.ok(takesStyle(image(), "opacity"));
  });

  test("other kinds take every style field", () => {
    for (const field of ["color", "width", "fill", "opacity"]) assert.ok(takesStyle({ kind: "rect" }, field));
  });
});

describe("resize by a corner handle", () => {
  test("dragging the south-east corner keeps the north-west one", () => {
    assert.deepEqual(resizeBox(image(), "se", [500, 400]), { x: 0, y: 0, w: 500, h: 400 });
  });

  test("dragging the north-west corner keeps the south-east one", () => {
    assert.deepEqual(resizeBox(note(), "nw", [50, 0]), { x: 50, y: 0, w: 250, h: 200 });
  });

  test("keeping the aspect ratio follows the larger of the two changes", () => {
    // 400 x 200 dragged to 800 wide (and only 250 high): 800 x 400.
    assert.deepEqual(resizeBox(image(), "se", [800, 250], { keepAspect: true }), {
      x: 0,
      y: 0,
      w: 800,
      h: 400,
    });
    // From the north-east corner, the bottom-left stays.
    assert.deepEqual(resizeBox(image(), "ne", [200, 150], { keepAspect: true }), {
      x: 0,
      y: 100,
      w: 200,
      h: 100,
    });
  });

  test("an image keeps its aspect unless Shift is held; a rectangle only with Shift", () => {
    const free = resizedElement(image(), "se", [800, 250], true);
    assert.deepEqual([free.w, free.h], [800, 250]);
    const kept = resizedElement(image(), "se", [800, 250], false);
    assert.equal(kept.w / kept.h, 2);
    const rect = { id: "r", kind: "rect", x: 0, y: 0, w: 100, h: 50, color: "#000000", width: 2 };
    assert.deepEqual(
      [resizedElement(rect, "se", [300, 60], false).w, resizedElement(rect, "se", [300, 60], false).h],
      [300, 60],
    );
    assert.equal(resizedElement(rect, "se", [300, 60], true).h, 150);
  });

  test("a note stays within 20 and 2000 units on each side", () => {
    const small = resizedElement(note(), "se", [101, 51], false);
    assert.deepEqual([small.x, small.y, small.w, small.h], [100, 50, 20, 20]);
    const big = resizedElement(note(), "se", [99999, 99999], false);
    assert.deepEqual([big.w, big.h], [2000, 2000]);
    // Past the fixed corner it stops at the minimum instead of flipping.
    const past = resizedElement(note(), "nw", [500, 500], false);
    assert.deepEqual([past.x, past.y, past.w, past.h], [280, 180, 20, 20]);
  });

  test("a flipped image stays flipped, in the same box", () => {
    const flipped = image({ x: 400, y: 0, w: -400, h: 200 });
    const out = resizeBox(flipped, "se", [600, 300], { keepAspect: true });
    assert.deepEqual(out, { x: 600, y: 0, w: -600, h: 300 });
  });
});

describe("note text wrapping", () => {
  test("words wrap at spaces to fit the width", () => {
    assert.deepEqual(wrapText("one two three four", 90, mono), ["one two", "three", "four"]);
  });

  test("newlines are kept, empty lines too", () => {
    assert.deepEqual(wrapText("a\n\nb", 100, mono), ["a", "", "b"]);
  });

  test("a word longer than a line is cut", () => {
    assert.deepEqual(wrapText("abcdefghijkl", 50, mono), ["abcde", "fghij", "kl"]);
  });

  test("an empty note has one empty line", () => {
    assert.deepEqual(wrapText("", 100, mono), [""]);
  });

  test("characters outside the basic plane are never split", () => {
    assert.deepEqual(wrapText("😀😀😀", 20, mono), ["😀😀", "😀"]);
  });
});

describe("uploading an image", () => {
  test("a big picture is scaled down to fit the view, keeping its aspect; a small one is kept", () => {
    assert.deepEqual(fitSize(4000, 2000, 600, 400), [600, 300]);
    assert.deepEqual(fitSize(1000, 3000, 600, 600), [200, 600]);
    assert.deepEqual(fitSize(64, 32, 600, 400), [64, 32]);
  });

  test("only PNG, JPEG, GIF and WebP files within the size limit are sent", () => {
    const limits = { max_asset_bytes: 1000 };
    assert.equal(refusal({ type: "image/png", size: 500 }, limits), null);
    assert.match(refusal({ type: "image/svg+xml", size: 500 }, limits), /Only PNG, JPEG, GIF and WebP/);
    assert.match(refusal({ type: "text/plain", size: 5 }, limits), /Only PNG/);
    assert.match(refusal({ type: "image/jpeg", size: 5000 }, limits), /at most/);
  });
});
