// Follow mode (PROTOCOL.md 1.1 "Viewports"): tells the others which board
// rectangle this page shows, remembers theirs, and fits the followed person's
// rectangle into this view. A follower says whom it follows with the optional
// `follows` field of `viewport`, sent only when the server lists "follow" in
// `welcome.features`; the followed person's people list shows it.
//
// The pure functions at the top need no DOM (they have unit tests under Node).

import { COORD_LIMIT, MAX_SCALE, MIN_SCALE } from "./viewport.js";

/** At most one `viewport` frame per this many ms (the server passes on one per 100 ms). */
export const SEND_EVERY_MS = 100;

const clamp = (n, lo, hi) => Math.max(lo, Math.min(hi, n));
const round2 = (n) => Math.round(n * 100) / 100;

/** The board rectangle {x, y, w, h} a view {x, y, scale, width, height} shows, within the protocol's bounds. */
export function visibleRect({ x, y, scale, width, height }) {
  return {
    x: clamp(round2(x), -COORD_LIMIT, COORD_LIMIT),
    y: clamp(round2(y), -COORD_LIMIT, COORD_LIMIT),
    w: clamp(round2(width / scale), 0.01, COORD_LIMIT),
    h: clamp(round2(height / scale), 0.01, COORD_LIMIT),
  };
}

/** The view {x, y, scale} of a width × height screen showing the whole rectangle, centred, aspect kept. */
export function fitRect(rect, width, height) {
  const scale = clamp(Math.min(width / rect.w, height / rect.h), MIN_SCALE, MAX_SCALE);
  return {
    x: rect.x + rect.w / 2 - width / 2 / scale,
    y: rect.y + rect.h / 2 - height / 2 / scale,
    scale,
  };
}

/** Whether a received `viewports` entry holds a usable rectangle. */
export function validRect(entry) {
  const finite = (n) => typeof n === "number" && Number.isFinite(n);
  return (
    entry !== null &&
    typeof entry === "object" &&
    typeof entry.sid === "string" &&
    finite(entry.x) &&
    finite(entry.y) &&
    finite(entry.w) &&
    finite(entry.h) &&
    entry.w > 0 &&
    entry.h > 0
  );
}

/** The sids in `follows` (sid -> followed sid) that follow `me` and are still here (`present`). */
export function followersOf(me, follows, present) {
  const sids = [];
  for (const [sid, target] of follows) if (target === me && present.has(sid)) sids.push(sid);
  return sids;
}

const STOP_HINT = "press Esc or move to stop";

export class Follow {
  /** `notify(text)` shows a short notice to the user. */
  constructor(board, notify) {
    this.board = board;
    this.notify = notify;
    this.rects = new Map(); // sid -> the latest {x, y, w, h} it showed
    this.follows = new Map(); // sid -> the sid it says it follows (or null)
    this.target = null; // the sid this page follows
    this.targetName = "";
    this.enabled = false; // the welcome listed "viewport"
    this.announce = false; // the welcome listed "follow": `follows` may be sent
    this.welcomed = false; // a welcome arrived on the current connection
    this.lastSent = null; // the last frame sent on this connection, as JSON
    this.sentAt = -Infinity;
    this.timer = null;
    this.banner = null;
    board.viewport.onChange((reason) => this.viewChanged(reason));
  }

  // --- frames ---------------------------------------------------------------

  welcome(frame) {
    const features = Array.isArray(frame.features) ? frame.features : [];
    this.enabled = features.includes("viewport");
    this.announce = features.includes("follow");
    this.welcomed = true;
    this.rects.clear();
    this.follows.clear();
    this.lastSent = null;
    const stillHere = this.target && frame.users.some((user) => user.sid === this.target);
    if (this.target && (!stillHere || !this.enabled)) this.stop(this.goneNotice());
    this.sendSoon();
  }

  /** Disconnected: what the server knew of this page's view is gone. */
  reset() {
    this.welcomed = false;
    this.lastSent = null;
  }

  /** Someone joined: send the view again, so that they can follow this page. */
  joined() {
    this.lastSent = null;
    this.sendSoon();
  }

  left(sid) {
    if (sid === this.target) this.stop(this.goneNotice());
    this.rects.delete(sid);
    this.follows.delete(sid);
  }

  viewports(list) {
    if (!Array.isArray(list)) return;
    const me = this.board.presence.me?.sid;
    let followersChanged = false;
    for (const entry of list) {
      if (!validRect(entry) || entry.sid === me) continue;
      this.rects.set(entry.sid, { x: entry.x, y: entry.y, w: entry.w, h: entry.h });
      // With the "follow" feature a missing `follows` means "follows nobody".
      if (this.announce || "follows" in entry) {
        const target = typeof entry.follows === "string" ? entry.follows : null;
        if ((this.follows.get(entry.sid) === me) !== (target === me)) followersChanged = true;
        this.follows.set(entry.sid, target);
      }
      if (entry.sid === this.target) this.apply();
    }
    if (followersChanged) this.board.presence.renderPeople();
  }

  // --- following ------------------------------------------------------------

  /** What the people list shows of follow mode: whom this page follows, who follows it, and the click. */
  peopleState() {
    const me = this.board.presence.me?.sid;
    const followers = new Set(followersOf(me, this.follows, this.board.presence.users));
    return { enabled: this.enabled, following: this.target, followers, pick: (sid) => this.toggle(sid) };
  }

  toggle(sid) {
    if (sid === this.target) this.stop();
    else this.start(sid);
  }

  start(sid) {
    const user = this.board.presence.users.get(sid);
    if (!this.enabled || !user || sid === this.board.presence.me?.sid) return;
    this.target = sid;
    this.targetName = user.name;
    this.showIndicator(user);
    this.board.presence.renderPeople();
    this.apply();
    this.sendSoon();
  }

  /** Stop following (with a notice to show, if any). */
  stop(notice = "") {
    if (!this.target) return;
    this.target = null;
    this.hideIndicator();
    this.board.presence.renderPeople();
    this.sendSoon();
    if (notice) this.notify(notice);
  }

  /** The user moved the view (pan, zoom, fit): following ends. Call it before moving. */
  userMoved() {
    this.stop();
  }

  goneNotice() {
    return `${this.targetName} left: you no longer follow them.`;
  }

  /** Fit the followed person's latest rectangle into this view. */
  apply() {
    const rect = this.rects.get(this.target);
    if (!rect) return;
    const view = this.board.viewport;
    view.setView(fitRect(rect, view.width, view.height));
    this.board.renderer.viewChanged(false);
  }

  viewChanged(reason) {
    if (reason === "resize" && this.target) this.apply();
    this.sendSoon();
  }

  // --- sending --------------------------------------------------------------

  /** Send this page's view within SEND_EVERY_MS: at once, or when the interval is over. */
  sendSoon() {
    if (this.timer) return;
    const wait = SEND_EVERY_MS - (performance.now() - this.sentAt);
    if (wait <= 0) this.sendNow();
    else this.timer = setTimeout(() => this.sendNow(), wait);
  }

  sendNow() {
    this.timer = null;
    if (!this.enabled || !this.welcomed || !this.board.conn.isOpen) return;
    const frame = { type: "viewport", ...visibleRect(this.board.viewport.state()) };
    if (this.announce) frame.follows = this.target;
    const text = JSON.stringify(frame);
    if (text === this.lastSent) return;
    if (this.board.conn.send(frame)) {
      this.lastSent = text;
      this.sentAt = performance.now();
    }
  }

  // --- the indicator: a frame in their colour and a banner with a stop button --

  showIndicator(user) {
    const surface = document.getElementById("board");
    surface.classList.add("following");
    surface.style.setProperty("--follow-color", user.color);
    if (!this.banner) {
      this.banner = document.createElement("div");
      this.banner.id = "follow-banner";
      this.banner.setAttribute("role", "status");
      const text = document.createElement("span");
      text.className = "follow-text";
      const button = document.createElement("button");
      button.type = "button";
      button.textContent = "Stop";
      button.title = "Stop following (Esc)";
      button.addEventListener("click", () => this.stop());
      this.banner.append(text, button);
      // The banner sits on the drawing surface: a press on it is not a stroke.
      this.banner.addEventListener("pointerdown", (event) => event.stopPropagation());
      surface.append(this.banner);
    }
    this.banner.style.setProperty("--follow-color", user.color);
    this.banner.querySelector(".follow-text").textContent = `Following ${user.name} — ${STOP_HINT}`;
    this.banner.hidden = false;
  }

  hideIndicator() {
    document.getElementById("board").classList.remove("following");
    if (this.banner) this.banner.hidden = true;
  }
}
