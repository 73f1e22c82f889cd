// connection.js without a socket: the limits it paces and checks frames with,
// and what it does after each close code (give up, or retry with backoff).

import assert from "node:assert/strict";
import { afterEach, describe, test } from "node:test";

import "./browser-globals.mjs";

import { Connection } from "../../static/whiteboard/js/connection.js";
import { CLOSE, DEFAULT_LIMITS } from "../../static/whiteboard/js/constants.js";

const opened = [];

afterEach(() => {
  // No retry may fire after a test: there is no WebSocket to open.
  for (const conn of opened.splice(0)) {
    conn.stopped = true;
    for (const name of Object.keys(conn.timers)) conn.clearTimer(name);
  }
});

function connection() {
  const seen = { statuses: [], closes: [] };
  const conn = new Connection(
    "/ws/boards/team/",
    {
      frame: () => {},
      status: (state, text) => seen.statuses.push([state, text]),
      closed: (code) => seen.closes.push(code),
    },
    () => null,
  );
  opened.push(conn);
  return { conn, seen };
}

describe("limits", () => {
  test("before welcome the page uses the server's defaults, max_points included", () => {
    const { conn } = connection();
    assert.deepEqual(conn.limits, { ...DEFAULT_LIMITS });
    assert.equal(conn.limits.max_points, 5000);
  });

  test("welcome's limits replace the defaults and refill the token bucket", () => {
    const { conn } = connection();
    conn.welcomed({ limits: { ops_per_second: 3, max_frame_bytes: 100 }, board: { epoch: "e1" } });
    assert.equal(conn.limits.ops_per_second, 3);
    assert.equal(conn.limits.max_points, DEFAULT_LIMITS.max_points, "limits welcome leaves out stay");
    assert.deepEqual([conn.takeToken(), conn.takeToken(), conn.takeToken()], [true, true, true]);
    assert.equal(conn.takeToken(), false, "the bucket holds ops_per_second tokens");
    assert.ok(conn.tokenWait() > 0 && conn.tokenWait() <= 340);
    assert.equal(conn.epoch, "e1");
  });

  test("frameFits counts UTF-8 bytes against max_frame_bytes", () => {
    const { conn } = connection();
    conn.limits = { ...conn.limits, max_frame_bytes: 20 };
    assert.equal(conn.frameFits({ t: "a".repeat(10) }), true); // {"t":"aaaaaaaaaa"} is 18 bytes
    assert.equal(conn.frameFits({ t: "é".repeat(10) }), false, "é is two bytes");
  });
});

describe("close codes", () => {
  for (const code of [CLOSE.LOGIN_REQUIRED, CLOSE.FORBIDDEN, CLOSE.NOT_FOUND]) {
    test(`after ${code} the page does not reconnect`, () => {
      const { conn, seen } = connection();
      const ws = {};
      conn.ws = ws;
      conn.closed(ws, code);
      assert.deepEqual(seen.closes, [code]);
      assert.equal(conn.stopped, true);
      assert.deepEqual(Object.keys(conn.timers), []);
      conn.reconnect();
      assert.equal(conn.ws, null, "not even when asked to");
    });
  }

  for (const code of [
    CLOSE.ABNORMAL,
    CLOSE.TRY_AGAIN,
    CLOSE.IDLE,
    CLOSE.SLOW_READER,
    CLOSE.TOO_MANY_CONNECTIONS,
  ]) {
    test(`after ${code} the page retries soon`, () => {
      const { conn, seen } = connection();
      const ws = {};
      conn.ws = ws;
      conn.closed(ws, code);
      assert.equal(conn.stopped, false);
      assert.ok(conn.timers.retry, "a retry is scheduled");
      assert.deepEqual(seen.statuses.at(-1), ["reconnecting", "Reconnecting in 1 s…"]);
    });
  }

  test("after the server's restart (1012) the first retry waits longer", () => {
    const { conn, seen } = connection();
    const ws = {};
    conn.ws = ws;
    conn.closed(ws, CLOSE.RESTART);
    assert.ok(conn.timers.retry);
    assert.equal(conn.attempt, 3, "the backoff starts two steps further: 1 to 2 s");
    assert.match(seen.statuses.at(-1)[1], /^Reconnecting in [12] s…$/);
  });

  test("a close of a socket the page already replaced is ignored", () => {
    const { conn, seen } = connection();
    conn.ws = {};
    conn.closed({}, CLOSE.NOT_FOUND);
    assert.deepEqual(seen.closes, []);
    assert.equal(conn.stopped, false);
  });
});
