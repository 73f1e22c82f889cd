// shapes.js: the geometry of elements that needs no canvas (boxes, hit tests,
// moves, the stroke's curve and the arrow's head). Text is measured on a
// canvas, so its box is tested in the browser tests, not here.

import assert from "node:assert/strict";
import { describe, test } from "node:test";

import {
  arrowHead,
  bbox,
  boxesIntersect,
  hitTest,
  moved,
  strokeCommands,
  unionBox,
} from "../../static/whiteboard/js/shapes.js";

const style = { color: "#000000", width: 4 };
const stroke = (points, extra = {}) => ({
  id: "s",
  kind: "stroke",
  x: 100,
  y: 50,
  points,
  ...style,
  ...extra,
});
const line = (kind = "line") => ({
  id: "l",
  kind,
  x: 0,
  y: 0,
  points: [
    [0, 0],
    [100, 0],
  ],
  ...style,
});
const box = (kind, extra = {}) => ({ id: "r", kind, x: 10, y: 20, w: 100, h: 50, ...style, ...extra });

function close(actual, expected, message) {
  assert.ok(Math.abs(actual - expected) < 1e-9, `${message ?? ""} ${actual} != ${expected}`);
}

describe("bbox", () => {
  test("a stroke's box holds its absolute points plus half its width", () => {
    const el = stroke([
      [0, 0],
      [30, -10],
      [60, 20],
    ]);
    assert.deepEqual(bbox(el), [98, 38, 162, 72]);
  });

  test("a rectangle drawn up and left (negative w and h) has the same box", () => {
    const down = box("rect");
    const up = box("rect", { x: 110, y: 70, w: -100, h: -50 });
    assert.deepEqual(bbox(down), [8, 18, 112, 72]);
    assert.deepEqual(bbox(up), bbox(down));
  });

  test("an arrow's box has room for its head", () => {
    assert.deepEqual(bbox(line("line")), [-2, -2, 102, 2]);
    // head length max(10, 3 * width) = 12, plus half the width
    assert.deepEqual(bbox(line("arrow")), [-14, -14, 114, 14]);
  });

  test("an ellipse's box is its w by h, plus half the width", () => {
    assert.deepEqual(bbox(box("ellipse")), [8, 18, 112, 72]);
  });
});

describe("boxes", () => {
  test("unionBox of nothing is null", () => {
    assert.equal(unionBox([]), null);
  });

  test("unionBox spans every element, and is a new array", () => {
    const a = box("rect");
    const b = stroke([
      [0, 0],
      [10, 10],
    ]);
    const union = unionBox([a, b]);
    assert.deepEqual(union, [8, 18, 112, 72]);
    const only = unionBox([b]);
    only[0] = -1000;
    assert.equal(bbox(b)[0], 98, "changing the union leaves the element's box alone");
  });

  test("boxesIntersect: overlapping and touching boxes meet, apart ones do not", () => {
    assert.equal(boxesIntersect([0, 0, 10, 10], [5, 5, 20, 20]), true);
    assert.equal(boxesIntersect([0, 0, 10, 10], [10, 10, 20, 20]), true);
    assert.equal(boxesIntersect([0, 0, 10, 10], [2, 2, 3, 3]), true);
    assert.equal(boxesIntersect([0, 0, 10, 10], [11, 0, 20, 10]), false);
    assert.equal(boxesIntersect([0, 0, 10, 10], [0, 11, 10, 20]), false);
  });
});

describe("hitTest", () => {
  test("a stroke is hit near its path, not in the empty part of its box", () => {
    const el = stroke([
      [0, 0],
      [100, 0],
      [100, 100],
    ]);
    assert.equal(hitTest(el, 150, 52, 1), true);
    assert.equal(hitTest(el, 201, 100, 1), true);
    assert.equal(hitTest(el, 150, 100, 1), false, "inside the box, far from the path");
    assert.equal(hitTest(el, 150, 60, 1), false);
  });

  test("the tolerance widens the reach", () => {
    const el = line();
    assert.equal(hitTest(el, 50, 6, 1), false);
    assert.equal(hitTest(el, 50, 6, 5), true);
  });

  test("a line is hit along its length, not past its end", () => {
    const el = line();
    assert.equal(hitTest(el, 50, 0, 0), true);
    assert.equal(hitTest(el, 100, 2, 0), true);
    assert.equal(hitTest(el, 110, 0, 2), false);
  });

  test("an arrow is hit on its head, off the shaft", () => {
    const el = line("arrow");
    const [barb] = arrowHead(el);
    assert.equal(hitTest(el, barb[0], barb[1], 0), true);
    assert.equal(hitTest(line("line"), barb[0], barb[1], 0), false);
  });

  test("an unfilled rectangle is hit on its edges, a filled one inside too", () => {
    const el = box("rect");
    assert.equal(hitTest(el, 10, 45, 0), true, "left edge");
    assert.equal(hitTest(el, 60, 70, 0), true, "bottom edge");
    assert.equal(hitTest(el, 60, 45, 1), false, "inside");
    assert.equal(hitTest(box("rect", { fill: "#ffcc00" }), 60, 45, 1), true);
    assert.equal(hitTest(box("rect", { fill: "#ffcc00" }), 200, 45, 1), false);
  });

  test("an ellipse is hit on its outline, a filled one inside too", () => {
    const el = box("ellipse"); // centre (60, 45), radii 50 and 25
    assert.equal(hitTest(el, 110, 45, 0), true, "right end");
    assert.equal(hitTest(el, 60, 20, 0), true, "top");
    assert.equal(hitTest(el, 60, 45, 1), false, "centre of an unfilled one");
    assert.equal(hitTest(el, 12, 22, 1), false, "corner of the box, outside the ellipse");
    assert.equal(hitTest(box("ellipse", { fill: "#ffcc00" }), 60, 45, 1), true);
  });
});

describe("moved", () => {
  test("moves x and y only, rounded to hundredths, and leaves the element alone", () => {
    const el = stroke([
      [0, 0],
      [10, 10],
    ]);
    const after = moved(el, 0.123, -50.456);
    assert.equal(after.x, 100.12);
    assert.equal(after.y, -0.46);
    assert.deepEqual(after.points, el.points);
    assert.equal(after.id, el.id);
    assert.equal(el.x, 100);
    assert.deepEqual(bbox(after), [98.12, -2.46, 112.12, 11.54]);
  });
});

describe("strokeCommands", () => {
  test("one or two points are a plain move and line", () => {
    assert.deepEqual(strokeCommands([[1, 2]]), [["M", [1, 2]]]);
    assert.deepEqual(
      strokeCommands([
        [1, 2],
        [3, 4],
      ]),
      [
        ["M", [1, 2]],
        ["L", [3, 4]],
      ],
    );
  });

  test("more points: quadratic curves through the midpoints, ending on the last point", () => {
    const cmds = strokeCommands([
      [0, 0],
      [10, 0],
      [10, 10],
      [20, 10],
    ]);
    assert.deepEqual(cmds, [
      ["M", [0, 0]],
      ["Q", [10, 0], [10, 5]],
      ["Q", [10, 10], [15, 10]],
      ["L", [20, 10]],
    ]);
  });
});

describe("arrowHead", () => {
  test("the barbs meet at the last point and point back along the last segment", () => {
    const el = { ...line("arrow"), width: 2 };
    const [a, tip, b] = arrowHead(el);
    assert.deepEqual(tip, [100, 0]);
    close(Math.hypot(a[0] - 100, a[1]), 10, "barb length is at least 10");
    close(Math.hypot(b[0] - 100, b[1]), 10);
    assert.ok(a[0] < 100 && b[0] < 100, "both barbs behind the tip");
    close(a[1], -b[1], "symmetric about the shaft");
  });

  test("a thick arrow has longer barbs (three times its width)", () => {
    const [a] = arrowHead({ ...line("arrow"), width: 8 });
    close(Math.hypot(a[0] - 100, a[1]), 24);
  });

  test("a one-point arrow still has a head", () => {
    const [a, tip, b] = arrowHead({ ...line("arrow"), points: [[5, 5]] });
    assert.deepEqual(tip, [5, 5]);
    assert.ok(Number.isFinite(a[0]) && Number.isFinite(b[1]));
  });
});
