// The board page's entry point: wires the store, the connection, the renderer,
// the tools and the page together, and handles every frame of PROTOCOL.md v1.

import { Connection } from "./connection.js";
import { CLOSE, FINAL_CLOSES } from "./constants.js";
import { exportPng, exportSvg } from "./export.js";
import { Follow } from "./follow.js";
import { ImageUploads, onAssetLoad, setAssetBase } from "./images.js";
import { Input } from "./input.js";
import { LiveNotes, NoteEditor, NoteTool } from "./notes.js";
import { Presence } from "./presence.js";
import { Renderer } from "./render.js";
import { hitTest, takesStyle, unionBox } from "./shapes.js";
import { newId, Store } from "./store.js";
import { TextTool } from "./text.js";
import { makeTools } from "./tools.js";
import * as ui from "./ui.js";
import { Viewport } from "./viewport.js";

const READONLY_VIEWER = "You can view this board but not draw on it.";
const READONLY_LOCKED = "This board is locked.";
// Shown when the socket is closed for good (the error frame's message wins).
const FINAL_REASONS = {
  [CLOSE.LOGIN_REQUIRED]: "This board is private: log in to open it.",
  [CLOSE.FORBIDDEN]: "You no longer have access to this board.",
  [CLOSE.NOT_FOUND]: "This board no longer exists.",
};

// Every frame type of PROTOCOL.md v1 the server sends; each has an on_<type>.
const SERVER_TYPES = new Set([
  "welcome",
  "snapshot",
  "ops",
  "ack",
  "error",
  "pong",
  "cursors",
  "viewports",
  "draft",
  "joined",
  "left",
  "board",
  "bye",
]);

class Board {
  constructor(config) {
    this.config = config;
    this.store = new Store(config.slug);
    this.viewport = new Viewport();
    const surface = document.getElementById("board");
    this.renderer = new Renderer(
      surface,
      document.getElementById("board-canvas"),
      document.getElementById("overlay-canvas"),
      this.store,
      this.viewport,
    );
    this.presence = new Presence(this);
    this.follow = new Follow(this, (text) => ui.notice(text));
    this.renderer.drawOverlay = (ctx) => this.drawOverlay(ctx);
    this.renderer.caching = new URLSearchParams(location.search).get("nocache") !== "1";
    this.selection = new Set();
    this.noteEditor = new NoteEditor(this, surface);
    this.liveNotes = new LiveNotes(this.store);
    this.tools = makeTools(this, new TextTool(this, surface), {
      note: new NoteTool(this, this.noteEditor, () => ui.noteColor()),
    });
    setAssetBase(`/b/${encodeURIComponent(config.slug)}/assets/`);
    onAssetLoad(() => this.renderer.invalidate());
    this.images = new ImageUploads(this, surface);
    this.toolName = "pen";
    // The role the page was rendered for, until `welcome` says it again.
    this.info = { slug: config.slug, title: config.title, role: config.role, locked: config.locked };
    this.hasState = false;
    this.sent = new Set();
    this.conn = new Connection(config.wsPath, this.connectionHandlers(), () =>
      this.hasState ? this.store.seq : null,
    );
    this.input = new Input(this, surface);
    this.store.onChange(() => this.storeChanged());
    ui.bindToolbar((action) => this.shortcut(action));
    ui.bindStyle((field, value) => this.restyleSelection(field, value));
    ui.bindRename(config.renameUrl, (name) => this.renamed(name));
    ui.rememberVisit(config.slug, config.title);
    ui.markTool(this.toolName);
    this.setInfo(this.info);
    ui.setPendingCount(this.store.pending.length);
    window.addEventListener("online", () => this.conn.isOpen || this.conn.reconnect());
    this.conn.open();
  }

  connectionHandlers() {
    return {
      frame: (frame) => this.handleFrame(frame),
      status: (state, text) => ui.setStatus(state, text),
      closed: (code) => this.closed(code),
    };
  }

  // --- what the tools use -------------------------------------------------

  color() {
    return document.getElementById("color").value;
  }

  width() {
    return Number(document.getElementById("width").value);
  }

  limits() {
    return this.conn.limits;
  }

  readonly() {
    return this.closedFinally || this.info.locked || this.info.role === "viewer";
  }

  tool() {
    return this.tools[this.toolName];
  }

  /** A durable change: shown at once, kept until confirmed, sent when possible. */
  commit(msg) {
    if (this.readonly()) return;
    if (!this.conn.frameFits(msg)) {
      ui.notice("Your change was refused: it is too large to send.", "error");
      return;
    }
    if (msg.type === "add") this.presence.committed(msg.element.id);
    this.store.addPending(msg);
    this.flush();
  }

  draft(element) {
    this.presence.sendDraft(element);
  }

  cursor([x, y]) {
    if (this.hasState) this.presence.sendCursor(x, y);
  }

  overlayChanged() {
    this.renderer.schedule();
  }

  selectionChanged() {
    this.markTool();
    this.renderer.schedule();
  }

  /** The toolbar shows the tool, and note colours instead of widths for a selection of notes only. */
  markTool() {
    const selected = [...this.selection].map((id) => this.store.get(id)).filter(Boolean);
    const notesOnly =
      this.toolName === "select" && selected.length > 0 && selected.every((el) => el.kind === "note");
    ui.markTool(this.toolName, notesOnly);
  }

  /** The topmost element under a board point, skipping `exclude`. */
  topmostAt(x, y, tolerance, exclude = null) {
    const list = this.store.list();
    for (let i = list.length - 1; i >= 0; i--) {
      const el = list[i];
      if (exclude?.has(el.id)) continue;
      if (hitTest(el, x, y, tolerance)) return el;
    }
    return null;
  }

  // --- sending --------------------------------------------------------------

  /** Send every unconfirmed op not yet sent on this connection, paced by the token bucket. */
  flush() {
    ui.setPendingCount(this.store.pending.length);
    if (!this.synced || !this.conn.isOpen) return;
    for (const msg of this.store.pendingMessages()) {
      if (this.sent.has(msg.cid)) continue;
      if (!this.conn.frameFits(msg)) {
        this.refused({ cid: msg.cid, code: "too_large", message: "it is larger than the server accepts." });
        continue;
      }
      if (!this.conn.takeToken()) {
        clearTimeout(this.flushTimer);
        this.flushTimer = setTimeout(() => this.flush(), this.conn.tokenWait());
        return;
      }
      this.conn.send(msg);
      this.sent.add(msg.cid);
    }
  }

  // --- receiving ------------------------------------------------------------

  /** Dispatch on a closed list of the server's frame types; anything else is ignored. */
  handleFrame(frame) {
    if (SERVER_TYPES.has(frame.type)) this[`on_${frame.type}`](frame);
    else console.warn("ignored a frame of unknown type", frame.type);
  }

  on_welcome(frame) {
    this.synced = false;
    this.sent = new Set();
    this.targetSeq = frame.seq;
    this.snapshotBuffer = [];
    this.setInfo(frame.board);
    this.follow.welcome(frame);
    this.presence.welcome(frame);
  }

  on_snapshot(frame) {
    this.snapshotBuffer.push(...frame.elements);
    if (frame.more) return;
    this.store.applySnapshot(this.snapshotBuffer, frame.seq);
    this.snapshotBuffer = [];
    this.stateArrived();
  }

  on_ops(frame) {
    this.presence.opsArrived(frame.ops);
    this.store.applyOps(frame.ops);
    if (!this.synced && this.store.seq >= this.targetSeq) this.stateArrived();
    ui.setPendingCount(this.store.pending.length);
  }

  stateArrived() {
    const first = !this.hasState;
    this.hasState = true;
    this.synced = true;
    if (first) this.showContent();
    this.flush();
  }

  on_ack(frame) {
    this.store.removePending(new Set([frame.cid]));
    ui.setPendingCount(this.store.pending.length);
  }

  on_error(frame) {
    if (frame.cid && this.store.isPending(frame.cid)) {
      this.refused(frame);
    } else if (frame.code === "nothing_to_undo" || frame.code === "nothing_to_redo") {
      ui.notice(frame.code === "nothing_to_undo" ? "Nothing to undo." : "Nothing to redo.");
    } else {
      this.lastError = frame;
      ui.notice(frame.message || frame.code, "error");
    }
  }

  /** A refused op: rolled back on screen, or retried if it was only too fast. */
  refused(frame) {
    if (frame.code === "rate_limited") {
      this.sent.delete(frame.cid);
      clearTimeout(this.flushTimer);
      this.flushTimer = setTimeout(() => this.flush(), 1000);
      return;
    }
    const kind = this.store.pendingKind(frame.cid);
    this.store.removePending(new Set([frame.cid]));
    // Others may still show the refused element's draft: withdraw it.
    if (kind === "add") this.presence.sendDraft(null);
    ui.setPendingCount(this.store.pending.length);
    if (frame.code === "nothing_to_undo") ui.notice("Nothing to undo.");
    else if (frame.code === "nothing_to_redo") ui.notice("Nothing to redo.");
    else ui.notice(`Your change was refused: ${frame.message || frame.code}`, "error");
    if (kind === "add" || kind === "update" || kind === "delete") this.renderer.invalidate();
  }

  on_board(frame) {
    this.setInfo(frame.board);
  }

  on_cursors(frame) {
    this.presence.cursors(frame.cursors);
  }

  on_viewports(frame) {
    this.follow.viewports(frame.viewports);
  }

  on_draft(frame) {
    if (this.liveNotes.draft(frame.sid, frame.element)) this.renderer.schedule();
    else this.presence.draft(frame.sid, frame.element);
  }

  on_joined(frame) {
    this.presence.joined(frame.user);
    this.follow.joined();
  }

  on_left(frame) {
    this.follow.left(frame.sid);
    this.liveNotes.forget(frame.sid);
    this.presence.left(frame.sid);
  }

  on_bye() {
    ui.setStatus("reconnecting", "The server is restarting…");
  }

  on_pong(frame) {
    if (typeof frame.t === "number") this.latency = Date.now() - frame.t;
  }

  closed(code) {
    this.synced = false;
    this.follow.reset();
    this.liveNotes.reset();
    this.presence.reset();
    if (!FINAL_CLOSES.has(code)) return;
    this.closedFinally = true;
    const reason = this.lastError ? this.lastError.message : FINAL_REASONS[code];
    ui.setStatus("offline", "Disconnected");
    const login = code === CLOSE.LOGIN_REQUIRED ? { href: this.config.loginUrl, text: "Log in" } : null;
    ui.setReadonly(reason, login);
    this.tool().cancel();
  }

  setInfo(board) {
    if (this.closedFinally) return;
    this.info = { ...this.info, ...board };
    ui.setTitle(this.info.title);
    const reason = this.info.locked ? READONLY_LOCKED : this.info.role === "viewer" ? READONLY_VIEWER : null;
    ui.setReadonly(reason);
    if (reason) this.tool().cancel();
  }

  storeChanged() {
    const before = this.selection.size;
    for (const id of this.selection) if (!this.store.get(id)) this.selection.delete(id);
    if (this.selection.size !== before) this.markTool();
  }

  // --- actions ----------------------------------------------------------------

  shortcut(action) {
    if (action.startsWith("tool:")) return this.selectTool(action.slice(5));
    const actions = {
      undo: () => this.commit({ type: "undo", cid: newId() }),
      redo: () => this.commit({ type: "redo", cid: newId() }),
      delete: () => this.deleteSelection(),
      deselect: () => this.selection.clear() || this.selectionChanged(),
      fit: () => this.fit(),
      "zoom-in": () => this.zoom(1.25),
      "zoom-out": () => this.zoom(0.8),
      "insert-image": () => this.readonly() || document.getElementById("image-file").click(),
      "export-png": () => exportPng(this.store.list(), this.config.slug),
      "export-svg": () => exportSvg(this.store.list(), this.config.slug, this.info.title),
    };
    if (actions[action]) actions[action]();
  }

  selectTool(name) {
    if (!this.tools[name] || this.readonly()) return;
    this.tool().cancel();
    if (name !== "select") this.selection.clear();
    this.toolName = name;
    this.markTool();
    this.renderer.schedule();
  }

  /** Colour, width or note colour ("note-fill") picked while elements are selected: they take it. */
  restyleSelection(field, value) {
    if (this.toolName !== "select" || this.readonly()) return;
    const noteFill = field === "note-fill";
    const name = noteFill ? "fill" : field;
    for (const id of this.selection) {
      const el = this.store.get(id);
      if (!el || (noteFill && el.kind !== "note")) continue;
      if (takesStyle(el, name) && el[name] !== value)
        this.commit({ type: "update", cid: newId(), id, set: { [name]: value } });
    }
  }

  deleteSelection() {
    if (!this.selection.size) return;
    this.commit({ type: "delete", cid: newId(), ids: [...this.selection] });
    this.selection.clear();
    this.markTool();
  }

  fit() {
    this.follow.userMoved();
    this.viewport.fit(unionBox(this.store.list()));
    this.renderer.viewChanged(false);
  }

  /** On first load, bring the drawing into view if it is not, never zooming in. */
  showContent() {
    const box = unionBox(this.store.list());
    if (!box || this.viewport.shows(box)) return;
    this.viewport.fit(box, 40, 1);
    this.renderer.viewChanged(false);
  }

  zoom(factor) {
    this.follow.userMoved();
    this.viewport.zoomAt(this.viewport.width / 2, this.viewport.height / 2, factor);
    this.renderer.viewChanged(false);
  }

  renamed(name) {
    ui.notice(`You are now “${name}”.`);
    this.conn.reconnect();
  }

  drawOverlay(ctx) {
    this.liveNotes.drawOverlay(ctx);
    this.noteEditor.place();
    this.presence.drawOverlay(ctx);
    this.tool().drawOverlay(ctx);
    if (this.toolName !== "select" && this.selection.size) this.tools.select.drawOverlay(ctx);
  }
}

const config = JSON.parse(document.getElementById("board-config").textContent);
const board = new Board(config);

/** Read-only hooks for tests and debugging; the page does not depend on them. */
window.whiteboard = Object.freeze({
  elements: () => board.store.list().map((el) => ({ ...el })),
  get seq() {
    return board.store.seq;
  },
  get status() {
    return document.getElementById("connection-status").dataset.state;
  },
  pending: () => board.store.pendingMessages().map((msg) => JSON.parse(JSON.stringify(msg))),
  get stats() {
    return { ...board.renderer.stats };
  },
  get viewport() {
    return board.viewport.state();
  },
  /** Follow mode: whom this page follows (a sid or null) and the others' latest rectangles by sid. */
  get follow() {
    const viewports = Object.fromEntries([...board.follow.rects].map(([sid, rect]) => [sid, { ...rect }]));
    return { following: board.follow.target, viewports };
  },
});
