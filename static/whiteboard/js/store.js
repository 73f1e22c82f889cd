// The board's elements as the server committed them, plus this page's own ops
// that are not yet confirmed (drawn at once, kept in localStorage until their
// cid comes back, rolled back if refused). Follows PROTOCOL.md "How to
// converge": every id keeps its last `v`, tombstones included.

import { LOGOUT_EVENT, PENDING_KEY_PREFIX } from "./constants.js";

export class Store {
  constructor(slug) {
    this.storageKey = `${PENDING_KEY_PREFIX}${slug}`;
    this.entries = new Map(); // id -> {el: element | null (tombstone), v}
    this.order = []; // ids in stacking order, bottom first, tombstones too
    this.seq = 0;
    // Several tabs may share the key: each item names the tab that keeps it.
    // A new page adopts every item it finds (a closed tab's offline work);
    // resending an op another open tab also sends is harmless (same cid: ack).
    this.tab = newId();
    this.pending = loadPending(this.storageKey).map(({ cid, msg }) => ({ cid, msg })); // [{cid, msg}]
    this.adopted = new Set(this.pending.map((p) => p.cid));
    this.overlay = new Map(); // id -> element | null, from pending ops
    this.localOrder = []; // ids only pending adds know, on top
    this.listCache = null;
    this.listeners = [];
    // Logging out (logout.js) discards the queue: this page must not write it back.
    this.discarded = false;
    document.addEventListener(LOGOUT_EVENT, () => {
      this.discarded = true;
    });
    this.rebuildOverlay();
  }

  /** fn({full, added}) after every change: `added` are new elements on top. */
  onChange(fn) {
    this.listeners.push(fn);
  }

  emit(change) {
    this.listCache = null;
    for (const fn of this.listeners) fn(change);
  }

  /** The element as this page shows it (pending changes included), or null. */
  get(id) {
    if (this.overlay.has(id)) return this.overlay.get(id);
    const entry = this.entries.get(id);
    return entry ? entry.el : null;
  }

  /** Every element shown, in stacking order; cached until the next change. */
  list() {
    if (this.listCache) return this.listCache;
    const out = [];
    for (const id of this.order) {
      const el = this.get(id);
      if (el) out.push(el);
    }
    for (const id of this.localOrder) {
      const el = this.overlay.get(id);
      if (el) out.push(el);
    }
    this.listCache = out;
    return out;
  }

  knows(id) {
    return this.entries.has(id) || this.overlay.has(id);
  }

  // --- server state ---------------------------------------------------------

  applySnapshot(elements, seq) {
    this.entries = new Map();
    this.order = [];
    for (const el of elements) {
      this.entries.set(el.id, { el, v: el.v });
      this.order.push(el.id);
    }
    this.seq = seq;
    this.rebuildOverlay();
    this.emit({ full: true, added: [] });
  }

  /** Apply an `ops` frame; returns the cids of this page's ops it confirmed. */
  applyOps(ops) {
    const confirmed = [];
    let full = false;
    const added = [];
    for (const op of ops) {
      const mine = this.isPending(op.cid);
      if (mine) confirmed.push(op.cid);
      const result = this.applyOne(op);
      if (result === "top" && !mine && this.overlay.size === 0) added.push(op.element);
      else if (result && !(mine && this.pendingKind(op.cid) === op.op)) full = true;
      if (op.seq > this.seq) this.seq = op.seq;
    }
    const drop = new Set(confirmed);
    if (drop.size) this.removePending(drop, false);
    // Others' changes under this page's pending ones: those are shown on the new state.
    else if (full && this.pending.length) this.rebuildOverlay();
    if (full || added.length) this.emit({ full, added: full ? [] : added });
    return confirmed;
  }

  /** One op entry: false if it changed nothing, "top" for a new element on top. */
  applyOne(op) {
    if (op.op === "add") return this.applyAdd(op);
    if (op.op === "update") {
      const entry = this.entries.get(op.id);
      if (!entry?.el || op.seq <= entry.v) return false;
      entry.el = { ...entry.el, ...op.set, v: op.seq };
      entry.v = op.seq;
      return true;
    }
    if (op.op === "delete") return op.ids.map((id) => this.tombstone(id, op.seq)).some(Boolean);
    if (op.op === "clear") {
      let changed = false;
      for (const [id, entry] of this.entries) {
        if (entry.el && entry.v < op.seq) changed = this.tombstone(id, op.seq) || changed;
      }
      return changed;
    }
    return false;
  }

  applyAdd(op) {
    const el = { ...op.element, v: op.seq };
    const entry = this.entries.get(el.id);
    if (entry && entry.v >= op.seq) return false;
    if (entry) {
      if (!this.order.includes(el.id)) this.order.push(el.id);
      Object.assign(entry, { el, v: op.seq });
      return true;
    }
    this.entries.set(el.id, { el, v: op.seq });
    this.order.push(el.id);
    return "top";
  }

  tombstone(id, seq) {
    const entry = this.entries.get(id);
    if (!entry) {
      this.entries.set(id, { el: null, v: seq });
      return false;
    }
    if (seq <= entry.v) return false;
    const was = entry.el;
    Object.assign(entry, { el: null, v: seq });
    return Boolean(was);
  }

  // --- this page's own ops --------------------------------------------------

  isPending(cid) {
    return this.pending.some((p) => p.cid === cid);
  }

  pendingKind(cid) {
    const item = this.pending.find((p) => p.cid === cid);
    return item ? item.msg.type : null;
  }

  /** Keep an op until the server confirms or refuses it; show its effect now. */
  addPending(msg) {
    this.pending.push({ cid: msg.cid, msg });
    this.savePending();
    this.rebuildOverlay();
    if (msg.type === "add" && this.overlay.size === 1 && !this.entries.has(msg.element.id)) {
      this.emit({ full: false, added: [msg.element] });
    } else if (msg.type !== "undo" && msg.type !== "redo") {
      this.emit({ full: true, added: [] });
    }
  }

  /** Forget ops (confirmed, acked or refused); a refused one is thus rolled back. */
  removePending(cids, emit = true) {
    const before = this.pending.length;
    this.pending = this.pending.filter((p) => !cids.has(p.cid));
    if (this.pending.length === before) return;
    this.savePending();
    this.rebuildOverlay();
    if (emit) this.emit({ full: true, added: [] });
  }

  /** The unconfirmed ops, oldest first, to (re)send after a reconnect. */
  pendingMessages() {
    return this.pending.map((p) => p.msg);
  }

  /** Write this tab's items, keeping those other open tabs wrote. */
  savePending() {
    if (this.discarded) return;
    try {
      const mine = new Set(this.pending.map((p) => p.cid));
      const others = loadPending(this.storageKey).filter(
        (p) => p.tab !== this.tab && !this.adopted.has(p.cid) && !mine.has(p.cid),
      );
      const items = [...others, ...this.pending.map((p) => ({ ...p, tab: this.tab }))];
      if (items.length) localStorage.setItem(this.storageKey, JSON.stringify(items));
      else localStorage.removeItem(this.storageKey);
    } catch (err) {
      console.warn("could not keep unsent changes in localStorage", err);
    }
  }

  rebuildOverlay() {
    const overlay = new Map();
    const localOrder = [];
    this.overlay = overlay;
    for (const { msg } of this.pending) {
      if (msg.type === "add") {
        if (!this.entries.has(msg.element.id) && !overlay.has(msg.element.id))
          localOrder.push(msg.element.id);
        overlay.set(msg.element.id, msg.element);
      } else if (msg.type === "update") {
        const base = this.get(msg.id);
        if (base) overlay.set(msg.id, { ...base, ...msg.set });
      } else if (msg.type === "delete") {
        for (const id of msg.ids) overlay.set(id, null);
      }
    }
    this.localOrder = localOrder;
    this.listCache = null;
  }
}

function loadPending(key) {
  try {
    const items = JSON.parse(localStorage.getItem(key) || "[]");
    return Array.isArray(items) ? items.filter((p) => p && typeof p.cid === "string" && p.msg) : [];
  } catch {
    return [];
  }
}

/** A cid unique for all time, as the protocol asks. */
export function newId() {
  if (crypto.randomUUID) return crypto.randomUUID().replaceAll("-", "");
  return Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, "0")).join(
    "",
  );
}
