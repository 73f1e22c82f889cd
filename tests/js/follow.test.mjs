// Follow mode's pure logic (static/whiteboard/js/follow.js): the rectangle a
// view shows, fitting someone's rectangle into another screen, and who follows whom.

import assert from "node:assert/strict";
import { test } from "node:test";

import { fitRect, followersOf, validRect, visibleRect } from "../../static/whiteboard/js/follow.js";
import { COORD_LIMIT, MAX_SCALE, MIN_SCALE, Viewport } from "../../static/whiteboard/js/viewport.js";

const close = (actual, expected, what, tolerance = 1e-9) =>
  assert.ok(Math.abs(actual - expected) <= tolerance, `${what}: ${actual} is not ${expected}`);

test("the visible rectangle is the screen divided by the scale", () => {
  const rect = visibleRect({ x: -120, y: 40, scale: 2, width: 1600, height: 900 });
  assert.deepEqual(rect, { x: -120, y: 40, w: 800, h: 450 });
});

test("the visible rectangle is rounded to hundredths", () => {
  const rect = visibleRect({ x: 1 / 3, y: -2 / 3, scale: 3, width: 1000, height: 500 });
  assert.deepEqual(rect, { x: 0.33, y: -0.67, w: 333.33, h: 166.67 });
});

test("the visible rectangle stays within the protocol's bounds", () => {
  const far = visibleRect({ x: -5e6, y: 5e6, scale: 1e-4, width: 1000, height: 10 });
  assert.deepEqual(far, { x: -COORD_LIMIT, y: COORD_LIMIT, w: COORD_LIMIT, h: 100000 });
  const tiny = visibleRect({ x: 0, y: 0, scale: 1000, width: 1, height: 1 });
  assert.ok(tiny.w > 0 && tiny.h > 0, "a side is never 0");
});

test("a rectangle of the same aspect fills the screen exactly", () => {
  const view = fitRect({ x: 100, y: 200, w: 800, h: 450 }, 1600, 900);
  assert.deepEqual(view, { x: 100, y: 200, scale: 2 });
});

test("a wider rectangle is shown whole, centred vertically", () => {
  // 1000 × 250 into 500 × 500: the width decides (scale 0.5), 250 × 0.5 = 125 px tall.
  const view = fitRect({ x: 0, y: 0, w: 1000, h: 250 }, 500, 500);
  close(view.scale, 0.5, "scale");
  close(view.x, 0, "x");
  // The screen shows 1000 board units vertically: the rectangle's centre (125) is in the middle.
  close(view.y, 125 - 500, "y");
});

test("a taller rectangle is shown whole, centred horizontally", () => {
  const view = fitRect({ x: -50, y: 10, w: 100, h: 400 }, 800, 400);
  close(view.scale, 1, "scale");
  close(view.y, 10, "y");
  close(view.x, -400, "x");
});

test("fitting keeps the whole rectangle on a screen of any shape", () => {
  const rect = { x: 37, y: -12, w: 640, h: 360 };
  for (const [width, height] of [
    [1280, 720],
    [300, 900],
    [1920, 400],
    [77, 77],
  ]) {
    const view = fitRect(rect, width, height);
    const shown = { x: view.x, y: view.y, w: width / view.scale, h: height / view.scale };
    assert.ok(shown.x <= rect.x + 1e-9 && shown.y <= rect.y + 1e-9, `${width}×${height} cuts the top left`);
    assert.ok(shown.x + shown.w >= rect.x + rect.w - 1e-9, `${width}×${height} cuts the right`);
    assert.ok(shown.y + shown.h >= rect.y + rect.h - 1e-9, `${width}×${height} cuts the bottom`);
    // One side fits exactly: the rectangle is as large as it can be.
    const fitsWidth = Math.abs(shown.w - rect.w) < 1e-6;
    const fitsHeight = Math.abs(shown.h - rect.h) < 1e-6;
    assert.ok(fitsWidth || fitsHeight, `${width}×${height} leaves space on both sides`);
    close(shown.x + shown.w / 2, rect.x + rect.w / 2, "centre x", 1e-6);
    close(shown.y + shown.h / 2, rect.y + rect.h / 2, "centre y", 1e-6);
  }
});

test("fitting stays within the viewport's zoom limits", () => {
  assert.equal(fitRect({ x: 0, y: 0, w: 1e6, h: 1e6 }, 800, 600).scale, MIN_SCALE);
  assert.equal(fitRect({ x: 0, y: 0, w: 0.01, h: 0.01 }, 800, 600).scale, MAX_SCALE);
});

test("a view fitted to what another screen of the same size shows is that view", () => {
  const leader = new Viewport();
  leader.resize(1280, 640);
  leader.panBy(-3000, 1500);
  leader.zoomAt(200, 100, 0.37);
  const follower = new Viewport();
  follower.resize(1280, 640);
  follower.setView(fitRect(visibleRect(leader.state()), follower.width, follower.height));
  close(follower.scale, leader.scale, "scale", 1e-4);
  close(follower.x, leader.x, "x", 0.1);
  close(follower.y, leader.y, "y", 0.1);
});

test("the viewport tells its listeners why it changed", () => {
  const view = new Viewport();
  const reasons = [];
  view.onChange((reason) => reasons.push(reason));
  view.resize(800, 600);
  view.panBy(10, 10);
  view.zoomAt(0, 0, 2);
  view.fit([0, 0, 100, 100]);
  view.setView({ x: 1, y: 2, scale: 3 });
  assert.deepEqual(reasons, ["resize", "pan", "zoom", "fit", "set"]);
  assert.deepEqual(view.state(), { x: 1, y: 2, scale: 3, width: 800, height: 600 });
});

test("only entries with a usable rectangle are accepted", () => {
  assert.ok(validRect({ sid: "a", x: 0, y: 0, w: 1, h: 1 }));
  for (const bad of [
    null,
    "x",
    { x: 0, y: 0, w: 1, h: 1 },
    { sid: "a", x: 0, y: 0, w: 0, h: 1 },
    { sid: "a", x: 0, y: 0, w: 1, h: -1 },
    { sid: "a", x: "0", y: 0, w: 1, h: 1 },
    { sid: "a", x: 0, y: Number.NaN, w: 1, h: 1 },
    { sid: "a", x: 0, y: 0, w: Number.POSITIVE_INFINITY, h: 1 },
  ]) {
    assert.equal(validRect(bad), false, JSON.stringify(bad));
  }
});

test("followers are those who follow me and are still here", () => {
  const follows = new Map([
    ["a", "me"],
    ["b", "c"],
    ["c", null],
    ["gone", "me"],
    ["d", "me"],
  ]);
  const present = new Map([
    ["a", {}],
    ["b", {}],
    ["c", {}],
    ["d", {}],
  ]);
  assert.deepEqual(followersOf("me", follows, present), ["a", "d"]);
  assert.deepEqual(followersOf("c", follows, present), ["b"]);
  assert.deepEqual(followersOf(undefined, follows, present), []);
});
