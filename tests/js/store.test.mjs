// store.js: the committed state (snapshots and ops, PROTOCOL.md "How to
// converge"), this page's pending ops shown at once, and their localStorage copy.

import assert from "node:assert/strict";
import { beforeEach, describe, test } from "node:test";
import { LOGOUT_EVENT, PENDING_KEY_PREFIX } from "../../static/whiteboard/js/constants.js";
import { newId, Store } from "../../static/whiteboard/js/store.js";
import { freshBrowser } from "./browser-globals.mjs";

const KEY = `${PENDING_KEY_PREFIX}team`;
let storage;

beforeEach(() => {
  storage = freshBrowser();
});

function rect(id, extra = {}) {
  return { id, kind: "rect", x: 0, y: 0, w: 10, h: 10, color: "#000000", width: 2, ...extra };
}

function add(seq, element, cid = `other-${seq}`) {
  return { seq, op: "add", cid, element };
}

function ids(store) {
  return store.list().map((el) => el.id);
}

/** A store with a snapshot, and every change it announces. */
function storeWith(elements = [], seq = 0) {
  const store = new Store("team");
  store.applySnapshot(
    elements.map((el) => ({ v: seq, ...el })),
    seq,
  );
  const changes = [];
  store.onChange((change) => changes.push(change));
  return { store, changes };
}

function stored() {
  return JSON.parse(storage.getItem(KEY) || "[]");
}

describe("the committed state", () => {
  test("a snapshot replaces everything, in stacking order, and sets seq", () => {
    const { store } = storeWith([rect("a"), rect("b")], 5);
    const changes = [];
    store.onChange((change) => changes.push(change));
    store.applySnapshot(
      [
        { ...rect("c"), v: 9 },
        { ...rect("a"), v: 3 },
      ],
      12,
    );
    assert.deepEqual(ids(store), ["c", "a"]);
    assert.equal(store.seq, 12);
    assert.equal(store.get("b"), null);
    assert.deepEqual(changes, [{ full: true, added: [] }]);
  });

  test("ops add, update, delete and clear; seq follows the newest op", () => {
    const { store } = storeWith([rect("a")], 1);
    store.applyOps([add(2, rect("b")), add(3, rect("c"))]);
    assert.deepEqual(ids(store), ["a", "b", "c"]);
    store.applyOps([{ seq: 4, op: "update", cid: "x", id: "b", set: { color: "#ff0000" } }]);
    assert.equal(store.get("b").color, "#ff0000");
    assert.equal(store.get("b").v, 4);
    store.applyOps([{ seq: 5, op: "delete", cid: "y", ids: ["a"] }]);
    assert.deepEqual(ids(store), ["b", "c"]);
    store.applyOps([{ seq: 6, op: "clear", cid: "z" }]);
    assert.deepEqual(ids(store), []);
    assert.equal(store.seq, 6);
  });

  test("an op older than what an element already has changes nothing", () => {
    const { store, changes } = storeWith([rect("a")], 10);
    store.applyOps([{ seq: 8, op: "update", cid: "x", id: "a", set: { color: "#ff0000" } }]);
    assert.equal(store.get("a").color, "#000000");
    assert.equal(store.seq, 10, "seq never goes back");
    assert.deepEqual(changes, []);
  });

  test("a tombstone keeps its seq: a late add of the same id stays deleted", () => {
    const { store } = storeWith([], 0);
    store.applyOps([{ seq: 7, op: "delete", cid: "d", ids: ["ghost"] }]);
    store.applyOps([add(5, rect("ghost"))]);
    assert.equal(store.get("ghost"), null);
    store.applyOps([add(8, rect("ghost"))]);
    assert.notEqual(store.get("ghost"), null, "a newer add (an undo of the delete) brings it back");
  });

  test("an update of a deleted element is ignored", () => {
    const { store } = storeWith([rect("a")], 1);
    store.applyOps([{ seq: 2, op: "delete", cid: "d", ids: ["a"] }]);
    store.applyOps([{ seq: 3, op: "update", cid: "u", id: "a", set: { x: 50 } }]);
    assert.equal(store.get("a"), null);
    assert.deepEqual(ids(store), []);
  });

  test("clear spares elements added after it", () => {
    const { store } = storeWith([], 0);
    store.applyOps([add(1, rect("old")), add(3, rect("new"))]);
    store.applyOps([{ seq: 2, op: "clear", cid: "c" }]);
    assert.deepEqual(ids(store), ["new"]);
  });

  test("a new element on top is announced as added; any other change as full", () => {
    const { store, changes } = storeWith([rect("a")], 1);
    store.applyOps([add(2, rect("b"))]);
    store.applyOps([{ seq: 3, op: "update", cid: "u", id: "a", set: { x: 5 } }]);
    assert.equal(changes.length, 2);
    assert.equal(changes[0].full, false);
    assert.deepEqual(
      changes[0].added.map((el) => el.id),
      ["b"],
    );
    assert.deepEqual(changes[1], { full: true, added: [] });
  });
});

describe("this page's pending ops", () => {
  test("a pending add shows at once, on top, and is kept in localStorage", () => {
    const { store, changes } = storeWith([rect("a")], 1);
    const msg = { type: "add", cid: "c1", element: rect("mine") };
    store.addPending(msg);
    assert.deepEqual(ids(store), ["a", "mine"]);
    assert.deepEqual(changes, [{ full: false, added: [msg.element] }]);
    assert.deepEqual(
      stored().map((item) => [item.cid, item.tab]),
      [["c1", store.tab]],
    );
    assert.deepEqual(store.pendingMessages(), [msg]);
  });

  test("pending updates and deletes show over the committed state", () => {
    const { store } = storeWith([rect("a"), rect("b")], 1);
    store.addPending({ type: "update", cid: "u1", id: "a", set: { color: "#00ff00" } });
    store.addPending({ type: "delete", cid: "d1", ids: ["b"] });
    assert.equal(store.get("a").color, "#00ff00");
    assert.equal(store.get("b"), null);
    assert.deepEqual(ids(store), ["a"]);
    assert.equal(store.entries.get("a").el.color, "#000000", "the committed state is untouched");
  });

  test("the server's echo confirms a pending add without a redraw", () => {
    const { store, changes } = storeWith([], 1);
    const element = rect("mine");
    store.addPending({ type: "add", cid: "c1", element });
    changes.length = 0;
    const confirmed = store.applyOps([add(2, element, "c1")]);
    assert.deepEqual(confirmed, ["c1"]);
    assert.deepEqual(store.pending, []);
    assert.deepEqual(ids(store), ["mine"]);
    assert.equal(store.get("mine").v, 2);
    assert.deepEqual(changes, []);
    assert.equal(storage.getItem(KEY), null, "nothing left to keep");
  });

  test("a refused op is rolled back when it is removed", () => {
    const { store, changes } = storeWith([rect("a")], 1);
    store.addPending({ type: "update", cid: "u1", id: "a", set: { x: 300 } });
    store.addPending({ type: "add", cid: "c2", element: rect("b") });
    changes.length = 0;
    store.removePending(new Set(["u1"]));
    assert.equal(store.get("a").x, 0);
    assert.deepEqual(ids(store), ["a", "b"]);
    assert.deepEqual(changes, [{ full: true, added: [] }]);
    assert.deepEqual(
      stored().map((item) => item.cid),
      ["c2"],
    );
  });

  test("removing cids that are not pending changes nothing", () => {
    const { store, changes } = storeWith([rect("a")], 1);
    store.addPending({ type: "delete", cid: "d1", ids: ["a"] });
    changes.length = 0;
    store.removePending(new Set(["unknown"]));
    assert.deepEqual(changes, []);
    assert.equal(store.pending.length, 1);
  });

  test("others' changes show under a pending update before it is confirmed", () => {
    const { store } = storeWith([rect("a")], 1);
    store.addPending({ type: "update", cid: "u1", id: "a", set: { color: "#00ff00" } });
    store.applyOps([{ seq: 2, op: "update", cid: "theirs", id: "a", set: { width: 9 } }]);
    assert.equal(store.get("a").color, "#00ff00");
    assert.equal(store.get("a").width, 9);
    store.applyOps([{ seq: 3, op: "delete", cid: "theirs2", ids: ["a"] }]);
    assert.equal(store.get("a"), null, "an element deleted by another stays deleted");
  });

  test("undo and redo wait for the server: nothing changes on screen", () => {
    const { store, changes } = storeWith([rect("a")], 1);
    store.addPending({ type: "undo", cid: "z1" });
    assert.deepEqual(changes, []);
    assert.deepEqual(ids(store), ["a"]);
    assert.equal(store.pendingKind("z1"), "undo");
    assert.equal(store.isPending("z1"), true);
  });
});

describe("the localStorage copy", () => {
  test("a new page adopts the unsent ops a closed tab left", () => {
    const first = new Store("team");
    first.applySnapshot([], 0);
    const msg = { type: "add", cid: "c1", element: rect("offline") };
    first.addPending(msg);
    const second = new Store("team");
    assert.deepEqual(second.pendingMessages(), [msg]);
    second.applySnapshot([], 0);
    assert.deepEqual(ids(second), ["offline"]);
  });

  test("each tab writes its own items and keeps those of other open tabs", () => {
    const one = new Store("team");
    const two = new Store("team");
    two.addPending({ type: "add", cid: "from-two", element: rect("b") });
    one.addPending({ type: "add", cid: "from-one", element: rect("a") });
    assert.deepEqual(
      stored()
        .map((item) => [item.cid, item.tab])
        .sort(),
      [
        ["from-one", one.tab],
        ["from-two", two.tab],
      ],
    );
    one.removePending(new Set(["from-one"]));
    assert.deepEqual(
      stored().map((item) => item.cid),
      ["from-two"],
    );
  });

  test("unreadable or malformed items are ignored", () => {
    storage.setItem(KEY, "{not json");
    assert.deepEqual(new Store("team").pending, []);
    storage.setItem(
      KEY,
      JSON.stringify([{ cid: 5, msg: {} }, { msg: {} }, { cid: "ok", msg: { type: "undo" } }]),
    );
    assert.deepEqual(
      new Store("team").pending.map((p) => p.cid),
      ["ok"],
    );
  });

  test("after logging out the page no longer writes its queue back", () => {
    const store = new Store("team");
    document.dispatchEvent(new Event(LOGOUT_EVENT));
    store.addPending({ type: "add", cid: "c1", element: rect("a") });
    assert.equal(storage.getItem(KEY), null);
    assert.equal(store.pending.length, 1, "the page still sends it while it is open");
  });

  test("boards keep separate queues", () => {
    const team = new Store("team");
    team.addPending({ type: "add", cid: "c1", element: rect("a") });
    assert.deepEqual(new Store("other").pending, []);
  });
});

test("newId gives 32 hex digits, never the same twice", () => {
  const seen = new Set(Array.from({ length: 1000 }, newId));
  assert.equal(seen.size, 1000);
  for (const id of seen) assert.match(id, /^[0-9a-f]{32}$/);
});
