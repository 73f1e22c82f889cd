// viewport.js: screen = (board - origin) * scale, zooming about the cursor,
// fitting a box, and the limits on scale and on where the view may go.

import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { MAX_SCALE, MIN_SCALE, Viewport } from "../../static/whiteboard/js/viewport.js";

function view(width = 800, height = 600) {
  const v = new Viewport();
  v.resize(width, height);
  return v;
}

function near(actual, expected, message) {
  assert.ok(Math.abs(actual - expected) < 1e-6, `${message ?? ""} ${actual} != ${expected}`);
}

function nearPoint(actual, expected, message) {
  near(actual[0], expected[0], message);
  near(actual[1], expected[1], message);
}

describe("coordinates", () => {
  test("toBoard and toScreen undo each other at any pan and zoom", () => {
    const v = view();
    v.panBy(-130, 47);
    v.zoomAt(200, 100, 2.5);
    nearPoint(v.toBoard(...v.toScreen(123.4, -56.7)), [123.4, -56.7]);
    nearPoint(v.toScreen(...v.toBoard(640, 10)), [640, 10]);
  });

  test("a new view shows the board from the origin at scale 1", () => {
    const v = view();
    assert.deepEqual(v.toBoard(0, 0), [0, 0]);
    assert.deepEqual(v.toScreen(300, 200), [300, 200]);
    assert.deepEqual(v.visibleBox(), [0, 0, 800, 600]);
  });

  test("panning moves the board with the pointer, in screen pixels", () => {
    const v = view();
    v.zoomAt(0, 0, 2);
    const before = v.toScreen(50, 50);
    v.panBy(30, -20);
    nearPoint(v.toScreen(50, 50), [before[0] + 30, before[1] - 20]);
  });
});

describe("zoomAt", () => {
  test("keeps the board point under the cursor in place", () => {
    const v = view();
    v.panBy(75, -25);
    const under = v.toBoard(321, 123);
    v.zoomAt(321, 123, 1.7);
    near(v.scale, 1.7);
    nearPoint(v.toBoard(321, 123), under, "zoom in");
    v.zoomAt(321, 123, 0.3);
    nearPoint(v.toBoard(321, 123), under, "zoom out");
  });

  test("the scale stays within its limits", () => {
    const v = view();
    v.zoomAt(400, 300, 1e6);
    assert.equal(v.scale, MAX_SCALE);
    v.zoomAt(400, 300, 1e-9);
    assert.equal(v.scale, MIN_SCALE);
    assert.ok(MIN_SCALE > 0 && MIN_SCALE < 1 && MAX_SCALE > 1);
  });

  test("every change bumps the version, so caches can tell", () => {
    const v = view();
    const seen = [v.version];
    v.zoomAt(0, 0, 2);
    seen.push(v.version);
    v.panBy(5, 5);
    seen.push(v.version);
    v.fit([0, 0, 10, 10]);
    seen.push(v.version);
    for (let i = 1; i < seen.length; i++) assert.ok(seen[i] > seen[i - 1], `step ${i}`);
  });
});

describe("fit", () => {
  test("centres the box and shows all of it inside the margin", () => {
    const v = view(800, 600);
    v.fit([1000, 2000, 1400, 2100], 40, 100);
    // width limits: (800 - 80) / 400 = 1.8; height allows (600 - 80) / 100 = 5.2
    near(v.scale, 1.8);
    nearPoint(v.toScreen(1200, 2050), [400, 300], "centre of the box at the centre of the screen");
    const [left] = v.toScreen(1000, 2000);
    near(left, 40, "the wider side touches the margin");
    assert.equal(v.shows([1000, 2000, 1400, 2100]), true);
  });

  test("never zooms in past maxScale", () => {
    const v = view(800, 600);
    v.fit([0, 0, 10, 10], 40, 1);
    assert.equal(v.scale, 1);
    nearPoint(v.toScreen(5, 5), [400, 300]);
  });

  test("a huge box is shown at the smallest scale", () => {
    const v = view(800, 600);
    v.fit([-900000, -900000, 900000, 900000]);
    assert.equal(v.scale, MIN_SCALE);
  });

  test("no box (an empty board) goes back to the origin", () => {
    const v = view();
    v.zoomAt(100, 100, 3);
    v.panBy(500, 500);
    v.fit(null);
    assert.deepEqual([v.x, v.y, v.scale], [0, 0, 1]);
  });
});

describe("limits of the view", () => {
  test("panning far away stops with the centre inside the protocol's coordinates", () => {
    const v = view(800, 600);
    for (let i = 0; i < 100; i++) v.panBy(-1e6, -1e6);
    const [cx, cy] = v.toBoard(400, 300);
    assert.ok(cx <= 1e6 && cy <= 1e6, `centre ${cx}, ${cy}`);
    assert.ok(cx > 500000, "it did move a long way");
    for (let i = 0; i < 200; i++) v.panBy(1e6, 1e6);
    const [lx, ly] = v.toBoard(400, 300);
    assert.ok(lx >= -1e6 && ly >= -1e6, `centre ${lx}, ${ly}`);
  });

  test("shows() tells whether a box is entirely on screen", () => {
    const v = view(800, 600);
    assert.equal(v.shows([10, 10, 790, 590]), true);
    assert.equal(v.shows([10, 10, 810, 590]), false);
    assert.equal(v.shows([-1, 10, 20, 20]), false);
  });

  test("resize keeps at least one pixel each way", () => {
    const v = view(0, -5);
    assert.deepEqual([v.width, v.height], [1, 1]);
  });
});
