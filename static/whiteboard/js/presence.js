// Who else is on the board: the people list, join/leave notices, their cursors
// (with names and colours) and the drafts they are drawing. Also sends this
// page's own cursor and draft, at most every 50 ms (the server coalesces to
// that rate anyway).

import { drawElement } from "./shapes.js";
import * as ui from "./ui.js";
import { COORD_LIMIT } from "./viewport.js";

const SEND_EVERY_MS = 50;
// A draft not refreshed for this long is dropped: its author's add or
// withdrawal went missing (say it was refused while the server relayed drafts).
const DRAFT_TTL_MS = 15000;

export class Presence {
  constructor(board) {
    this.board = board;
    this.me = null;
    this.users = new Map(); // sid -> {sid, name, color}
    this.cursorAt = new Map(); // sid -> [x, y]
    this.drafts = new Map(); // sid -> element
    this.draftAt = new Map(); // sid -> when it last changed
    setInterval(() => this.expireDrafts(), DRAFT_TTL_MS / 3);
    this.outgoing = { draft: undefined, cursor: undefined };
    this.timer = null;
    this.lastSent = 0;
  }

  welcome(frame) {
    this.me = frame.you;
    const input = document.getElementById("guest-name-input");
    if (input) input.placeholder = frame.you.name;
    this.users = new Map(frame.users.map((u) => [u.sid, u]));
    this.cursorAt.clear();
    this.drafts.clear();
    this.renderPeople();
  }

  /** Disconnected: nobody else is known to be here until the next `welcome`. */
  reset() {
    this.users.clear();
    this.cursorAt.clear();
    this.drafts.clear();
    this.renderPeople();
    this.board.renderer.schedule();
  }

  /** The people list, with who follows whom (follow mode). */
  renderPeople() {
    ui.renderPeople(this.me, this.users, this.board.follow ? this.board.follow.peopleState() : null);
  }

  joined(user) {
    this.users.set(user.sid, user);
    this.renderPeople();
    ui.notice(`${user.name} joined.`);
  }

  left(sid) {
    const user = this.users.get(sid);
    this.users.delete(sid);
    this.cursorAt.delete(sid);
    this.drafts.delete(sid);
    this.renderPeople();
    if (user) ui.notice(`${user.name} left.`);
    this.board.renderer.schedule();
  }

  cursors(list) {
    for (const { sid, x, y } of list) this.cursorAt.set(sid, [x, y]);
    this.board.renderer.schedule();
  }

  /** A draft of an element already committed is stale (it crossed the add). */
  draft(sid, element) {
    if (element && !this.board.store.knows(element.id)) {
      this.drafts.set(sid, element);
      this.draftAt.set(sid, performance.now());
    } else {
      this.drafts.delete(sid);
    }
    this.board.renderer.schedule();
  }

  expireDrafts() {
    const before = performance.now() - DRAFT_TTL_MS;
    const stale = [...this.drafts.keys()].filter((sid) => this.draftAt.get(sid) < before);
    for (const sid of stale) this.drafts.delete(sid);
    if (stale.length) this.board.renderer.schedule();
  }

  /** A committed add replaces its author's draft of the same element. */
  opsArrived(ops) {
    for (const op of ops) {
      const draft = this.drafts.get(op.sid);
      if (op.op === "add" && draft && draft.id === op.element.id) this.drafts.delete(op.sid);
    }
  }

  sendDraft(element) {
    this.queue("draft", element);
  }

  /** An element is being committed: a draft of it still waiting must not follow. */
  committed(id) {
    const waiting = this.outgoing.draft;
    if (waiting && waiting.id === id) this.outgoing.draft = undefined;
  }

  sendCursor(x, y) {
    const inRange = (n) => Math.max(-COORD_LIMIT, Math.min(COORD_LIMIT, Math.round(n * 10) / 10));
    this.queue("cursor", [inRange(x), inRange(y)]);
  }

  queue(kind, value) {
    this.outgoing[kind] = value;
    const wait = SEND_EVERY_MS - (performance.now() - this.lastSent);
    if (wait <= 0) this.sendNow();
    else if (!this.timer) this.timer = setTimeout(() => this.sendNow(), wait);
  }

  sendNow() {
    this.timer = null;
    this.lastSent = performance.now();
    const { draft, cursor } = this.outgoing;
    this.outgoing = { draft: undefined, cursor: undefined };
    const conn = this.board.conn;
    if (!this.board.synced) return;
    if (draft !== undefined && !this.board.readonly()) conn.send({ type: "draft", element: draft });
    if (cursor !== undefined) conn.send({ type: "cursor", x: cursor[0], y: cursor[1] });
  }

  drawOverlay(ctx) {
    for (const el of this.drafts.values()) drawElement(ctx, el);
    const scale = this.board.viewport.scale;
    for (const [sid, [x, y]] of this.cursorAt) {
      const user = this.users.get(sid);
      if (user) drawCursor(ctx, x, y, user, scale);
    }
  }
}

/** An arrow pointer and a name tag, the same size on screen at any zoom. */
function drawCursor(ctx, x, y, user, scale) {
  ctx.save();
  ctx.translate(x, y);
  ctx.scale(1 / scale, 1 / scale);
  ctx.globalAlpha = 1;
  ctx.fillStyle = user.color;
  ctx.strokeStyle = "#ffffff";
  ctx.lineWidth = 1.5;
  ctx.beginPath();
  ctx.moveTo(0, 0);
  ctx.lineTo(0, 16);
  ctx.lineTo(4.5, 12);
  ctx.lineTo(11, 12);
  ctx.closePath();
  ctx.fill();
  ctx.stroke();
  ctx.font = "12px system-ui, sans-serif";
  ctx.textBaseline = "top";
  const label = user.name.length > 40 ? `${user.name.slice(0, 39)}…` : user.name;
  const w = ctx.measureText(label).width + 8;
  ctx.fillRect(10, 16, w, 18);
  ctx.fillStyle = "#ffffff";
  ctx.fillText(label, 14, 19);
  ctx.restore();
}
