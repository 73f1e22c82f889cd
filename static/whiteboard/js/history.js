// The history page: the board read-only as it was right after any seq, with
// the op that made it outlined; the board's ops newest first, a page at a time;
// the ops of one element (click it on the board); and, for owners, restore.
//
// The page never holds the whole log: ops come from history.json a page at a
// time (newest first), the state at a seq from state.json (the server starts
// from its nearest checkpoint). Everything users typed (names, ids) goes into
// the DOM through textContent only.

import { Renderer } from "./render.js";
import { bbox, hitTest, unionBox } from "./shapes.js";
import { Viewport } from "./viewport.js";

const PAGE = 50;
const SLIDER_WAIT_MS = 120; // the slider fetches once it rests this long
const ELEMENT_WANTED = 20; // an element's search goes on until it has this many
const ELEMENT_ROUNDS = 10; // or after this many requests (each a bounded stretch)
const SHOWN_IDS = 3;
const HIGHLIGHT = "#0969da";
const PICKED = "#bc4c00";

const $ = (selector) => document.querySelector(selector);

/** The few things the renderer asks of a store: the elements, and changes. */
class ShownStore {
  constructor() {
    this.elements = [];
    this.listeners = [];
  }

  onChange(fn) {
    this.listeners.push(fn);
  }

  list() {
    return this.elements;
  }

  set(elements) {
    this.elements = elements;
    for (const fn of this.listeners) fn({ full: true, added: [] });
  }
}

class Failed extends Error {}

async function getJson(url) {
  const answer = await fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" });
  const data = await answer.json().catch(() => null);
  if (!answer.ok || !data) throw new Failed(data?.message || `The server answered ${answer.status}.`);
  return data;
}

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function seqRange(op) {
  return op.last_seq > op.seq ? `#${op.seq}–${op.last_seq}` : `#${op.seq}`;
}

function when(iso) {
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : date.toLocaleString();
}

/** "add", "delete 3 elements", "clear (every element)"… in words, as text nodes. */
function whatNodes(op) {
  const nodes = [el("span", "kind", op.kind)];
  const count = op.ids.length + (op.more || 0);
  if (op.all) nodes.push(document.createTextNode(" every element"));
  if (count) {
    nodes.push(document.createTextNode(op.all ? " and " : " "));
    op.ids.slice(0, SHOWN_IDS).forEach((id, i) => {
      if (i) nodes.push(document.createTextNode(", "));
      nodes.push(el("code", "id", id));
    });
    if (count > SHOWN_IDS) nodes.push(document.createTextNode(` +${count - SHOWN_IDS} more`));
  }
  return nodes;
}

function whatText(op) {
  const count = op.ids.length + (op.more || 0);
  const parts = [op.kind];
  if (op.all) parts.push("every element");
  if (count) parts.push(count === 1 ? `element ${op.ids[0]}` : `${count} elements`);
  return parts.join(" · ");
}

class History {
  constructor(config) {
    this.config = config;
    this.from = config.historyFrom;
    this.to = config.seq;
    this.shown = null; // the seq on screen
    this.token = 0; // the latest go(): older answers are dropped
    this.opsCache = new Map(); // first seq -> op
    this.currentOp = null;
    this.highlight = new Set();
    this.picked = null; // the element whose history is listed
    this.nextBefore = undefined; // the ops list's next page (null: none)
    this.items = new Map(); // first seq -> <li> of the ops list
    this.fitted = false;

    this.surface = $("#board");
    this.store = new ShownStore();
    this.viewport = new Viewport();
    this.renderer = new Renderer(
      this.surface,
      $("#board-canvas"),
      $("#overlay-canvas"),
      this.store,
      this.viewport,
    );
    this.renderer.drawOverlay = (ctx) => this.drawOverlay(ctx);
    this.slider = $("#seq-slider");
    this.bind();
  }

  async start() {
    await this.loadOps();
    await this.go(this.to);
  }

  // --- wiring ---------------------------------------------------------------

  bind() {
    this.slider.addEventListener("input", () => {
      const seq = Number(this.slider.value);
      this.setLabel(seq, true);
      clearTimeout(this.sliderTimer);
      this.sliderTimer = setTimeout(() => this.go(seq), SLIDER_WAIT_MS);
    });
    this.slider.addEventListener("change", () => {
      clearTimeout(this.sliderTimer);
      this.go(Number(this.slider.value));
    });
    $("#step-prev").addEventListener("click", () => this.step(-1));
    $("#step-next").addEventListener("click", () => this.step(1));
    $("#latest").addEventListener("click", () => this.go(this.to));
    $("#fit").addEventListener("click", () => this.fit(true));
    $("#load-older").addEventListener("click", () => this.loadOps());
    $("#element-older").addEventListener("click", () => this.loadElementOps());
    $("#element-close").addEventListener("click", () => this.pick(null));
    $("#time-form").addEventListener("submit", (event) => {
      event.preventDefault();
      this.goToTime($("#time-input").value);
    });
    const restore = $("#restore-form");
    if (restore) {
      restore.addEventListener("submit", (event) => {
        event.preventDefault();
        this.restore(restore);
      });
    }
    this.surface.addEventListener("keydown", (event) => {
      if (event.key === "ArrowLeft") this.step(-1);
      else if (event.key === "ArrowRight") this.step(1);
      else if (event.key === "f" || event.key === "F") this.fit(true);
      else return;
      event.preventDefault();
    });
    this.bindPointer();
  }

  /** Drag to pan, wheel to zoom, click to pick an element. */
  bindPointer() {
    let down = null;
    this.surface.addEventListener("pointerdown", (event) => {
      if (event.button !== 0 && event.button !== 1) return;
      down = { x: event.clientX, y: event.clientY, lastX: event.clientX, lastY: event.clientY, moved: false };
      this.surface.setPointerCapture(event.pointerId);
    });
    this.surface.addEventListener("pointermove", (event) => {
      if (!down) return;
      if (!down.moved && Math.hypot(event.clientX - down.x, event.clientY - down.y) < 4) return;
      down.moved = true;
      this.surface.classList.add("panning");
      this.viewport.panBy(event.clientX - down.lastX, event.clientY - down.lastY);
      down.lastX = event.clientX;
      down.lastY = event.clientY;
      this.renderer.viewChanged(true);
    });
    const up = (event) => {
      if (!down) return;
      const click = !down.moved;
      down = null;
      this.surface.classList.remove("panning");
      if (click && event.type === "pointerup") this.clickAt(event);
    };
    this.surface.addEventListener("pointerup", up);
    this.surface.addEventListener("pointercancel", up);
    this.surface.addEventListener(
      "wheel",
      (event) => {
        event.preventDefault();
        const rect = this.surface.getBoundingClientRect();
        const factor = Math.exp(-event.deltaY * 0.0015);
        this.viewport.zoomAt(event.clientX - rect.left, event.clientY - rect.top, factor);
        this.renderer.viewChanged(true);
      },
      { passive: false },
    );
  }

  clickAt(event) {
    const rect = this.surface.getBoundingClientRect();
    const [x, y] = this.viewport.toBoard(event.clientX - rect.left, event.clientY - rect.top);
    const tolerance = 4 / this.viewport.scale;
    const list = this.store.list();
    for (let i = list.length - 1; i >= 0; i--) {
      if (hitTest(list[i], x, y, tolerance)) {
        this.pick(list[i]);
        return;
      }
    }
    this.pick(null);
  }

  // --- the board at a seq -----------------------------------------------------

  /** Show the board right after `seq`, the op holding it outlined. */
  async go(seq) {
    seq = Math.max(this.from, Math.min(this.to, seq));
    const token = ++this.token;
    this.slider.value = String(seq);
    this.setLabel(seq, true);
    this.surface.dataset.state = "loading";
    let state, op;
    try {
      [state, op] = await Promise.all([getJson(`${this.config.stateUrl}?at=${seq}`), this.opAt(seq)]);
    } catch (err) {
      if (token === this.token) {
        this.surface.dataset.state = "error";
        this.message(err instanceof Failed ? err.message : "The server could not be reached.", "error");
      }
      return;
    }
    if (token !== this.token) return;
    this.shown = seq;
    this.currentOp = op;
    this.highlight = new Set(op ? op.ids : []);
    this.store.set(state.elements);
    if (!this.fitted) this.fit(false);
    this.surface.dataset.seq = String(seq);
    this.surface.dataset.count = String(state.elements.length);
    this.surface.dataset.state = "ready";
    this.setLabel(seq, false);
    this.describeShown(op, state.elements.length);
    this.markCurrent();
    const restoreSeq = $("#restore-seq");
    if (restoreSeq) {
      restoreSeq.value = String(seq);
      $("#restore").disabled = seq === this.to;
    }
    $("#step-prev").disabled = seq <= this.from;
    $("#step-next").disabled = seq >= this.to;
  }

  /** The previous or the next op: the board right after it. */
  async step(direction) {
    if (this.shown === null) return;
    if (direction < 0) {
      const start = this.currentOp ? this.currentOp.seq : this.shown;
      await this.go(start - 1);
      return;
    }
    const target = this.shown + 1;
    if (target > this.to) return;
    const op = await this.opAt(target).catch(() => null);
    await this.go(op ? op.last_seq : target);
  }

  /** The op whose seqs hold `seq` (null for none), from the cache or the server. */
  async opAt(seq) {
    if (seq <= this.from) return null;
    for (const op of this.opsCache.values()) {
      if (op.seq <= seq && seq <= op.last_seq) return op;
    }
    const data = await getJson(`${this.config.historyUrl}?before=${seq + 1}&limit=1`);
    const op = data.ops[0];
    if (!op) return null;
    this.opsCache.set(op.seq, op);
    return op.last_seq >= seq ? op : null;
  }

  async goToTime(value) {
    const moment = new Date(value);
    if (!value || Number.isNaN(moment.getTime())) return;
    try {
      const data = await getJson(
        `${this.config.historyUrl}?time=${encodeURIComponent(moment.toISOString())}`,
      );
      await this.go(data.seq);
    } catch (err) {
      this.message(err.message, "error");
    }
  }

  fit(always) {
    const box = unionBox(this.store.list());
    this.fitted = true;
    if (!always && (!box || this.viewport.shows(box))) return;
    this.viewport.fit(box, 40, always ? 4 : 1);
    this.renderer.viewChanged(false);
  }

  drawOverlay(ctx) {
    const k = 1 / this.viewport.scale;
    ctx.lineWidth = 2 * k;
    ctx.setLineDash([6 * k, 4 * k]);
    for (const element of this.store.list()) {
      const picked = this.picked === element.id;
      if (!picked && !this.highlight.has(element.id)) continue;
      const [x0, y0, x1, y1] = bbox(element);
      ctx.strokeStyle = picked ? PICKED : HIGHLIGHT;
      ctx.strokeRect(x0 - 4 * k, y0 - 4 * k, x1 - x0 + 8 * k, y1 - y0 + 8 * k);
    }
    ctx.setLineDash([]);
  }

  setLabel(seq, loading) {
    const text = `Seq ${seq} of ${this.to}`;
    $("#seq-label").textContent = loading && seq !== this.shown ? `${text}…` : text;
  }

  describeShown(op, count) {
    const box = $("#shown-op");
    const elements = count === 1 ? "1 element" : `${count} elements`;
    if (this.shown === this.to) box.textContent = `The board as it is now (seq ${this.shown}): ${elements}.`;
    else box.textContent = `The board right after seq ${this.shown}: ${elements}.`;
    if (op) {
      box.append(el("br"), `${seqRange(op)} ${when(op.time)}, ${op.by || "unknown"}: ${whatText(op)}`);
    } else if (this.shown === this.from && this.from > 0) {
      box.append(el("br"), "Older ops were dropped: this is as far back as the history goes.");
    }
  }

  markCurrent() {
    for (const [seq, item] of this.items) {
      const button = item.firstElementChild;
      if (this.currentOp && seq === this.currentOp.seq) button.setAttribute("aria-current", "true");
      else button.removeAttribute("aria-current");
    }
  }

  // --- the ops list -------------------------------------------------------------

  async loadOps() {
    if (this.nextBefore === null) return;
    const button = $("#load-older");
    button.disabled = true;
    const before = this.nextBefore === undefined ? "" : `&before=${this.nextBefore}`;
    try {
      const data = await getJson(`${this.config.historyUrl}?limit=${PAGE}${before}`);
      if (this.nextBefore === undefined) this.setBounds(data);
      const list = $("#ops");
      for (const op of data.ops) {
        this.opsCache.set(op.seq, op);
        const item = this.opItem(op);
        this.items.set(op.seq, item);
        list.append(item);
      }
      this.nextBefore = data.next_before;
      button.hidden = this.nextBefore === null;
      $("#ops-status").textContent = this.items.size ? "" : "No ops kept for this board.";
      this.markCurrent();
    } catch (err) {
      $("#ops-status").textContent = err.message;
    } finally {
      button.disabled = false;
    }
  }

  setBounds(data) {
    this.to = data.seq;
    this.from = data.history_from;
    this.slider.min = String(this.from);
    this.slider.max = String(this.to);
  }

  opItem(op) {
    const item = el("li", "op");
    const button = el("button", "op-button");
    button.type = "button";
    button.dataset.seq = String(op.seq);
    const head = el("span", "op-head");
    head.append(el("span", "seq", seqRange(op)), " ", el("time", "when", when(op.time)));
    head.lastChild.dateTime = op.time;
    const who = el("span", "who", op.by || "unknown");
    const what = el("span", "what");
    what.append(...whatNodes(op));
    button.append(head, who, what);
    button.addEventListener("click", () => this.go(op.last_seq));
    item.append(button);
    return item;
  }

  // --- one element's ops -----------------------------------------------------------

  pick(element) {
    this.picked = element ? element.id : null;
    this.renderer.schedule();
    const box = $("#element-history");
    box.hidden = !element;
    if (!element) return;
    $("#element-id").textContent = element.id;
    $("#element-ops").replaceChildren();
    this.elementNext = undefined;
    this.elementToken = (this.elementToken || 0) + 1;
    this.loadElementOps();
  }

  /** The picked element's ops, newest first: requests go on (each scans a
   * bounded stretch of the log) until enough are found or a few were made. */
  async loadElementOps() {
    const id = this.picked;
    const token = this.elementToken;
    if (id === null || this.elementNext === null) return;
    const status = $("#element-status");
    const more = $("#element-older");
    more.disabled = true;
    status.textContent = "Looking…";
    let found = 0;
    try {
      for (let round = 0; round < ELEMENT_ROUNDS; round++) {
        const before = this.elementNext === undefined ? "" : `&before=${this.elementNext}`;
        const url = `${this.config.historyUrl}?element=${encodeURIComponent(id)}&limit=${PAGE}${before}`;
        const data = await getJson(url);
        if (token !== this.elementToken) return;
        for (const op of data.ops) {
          this.opsCache.set(op.seq, op);
          $("#element-ops").append(this.opItem(op));
        }
        found += data.ops.length;
        this.elementNext = data.next_before;
        if (this.elementNext === null || found >= ELEMENT_WANTED) break;
      }
      const total = $("#element-ops").children.length;
      if (this.elementNext === null) {
        status.textContent = total
          ? `${total === 1 ? "1 op" : `${total} ops`}, back to the start of the history.`
          : "No op touched it.";
      } else {
        status.textContent = `Looked back to seq ${this.elementNext}.`;
      }
      more.hidden = this.elementNext === null;
    } catch (err) {
      if (token === this.elementToken) status.textContent = err.message;
    } finally {
      more.disabled = false;
    }
  }

  // --- restore ---------------------------------------------------------------------

  async restore(form) {
    const button = $("#restore");
    button.disabled = true;
    try {
      const answer = await fetch(form.action, {
        method: "POST",
        body: new FormData(form),
        headers: { Accept: "application/json", "X-CSRFToken": form.elements.csrfmiddlewaretoken.value },
        credentials: "same-origin",
      });
      const data = await answer.json().catch(() => null);
      if (!answer.ok || !data) {
        this.message(data?.message || `The server answered ${answer.status}.`, "error");
        return;
      }
      this.message(`The board is back as it was after seq ${data.restored_to}.`, "success", {
        href: this.config.boardUrl,
        text: "Open the board",
      });
      await this.refresh(data.seq);
    } catch {
      this.message("The server could not be reached.", "error");
    } finally {
      button.disabled = this.shown === this.to;
    }
  }

  /** After a restore: the newest ops again, and the board as it is now. */
  async refresh(seq) {
    this.to = Math.max(this.to, seq);
    this.slider.max = String(this.to);
    this.nextBefore = undefined;
    this.items.clear();
    $("#ops").replaceChildren();
    await this.loadOps();
    await this.go(this.to);
  }

  message(text, kind, link = null) {
    const box = $("#history-message");
    box.className = `history-message ${kind}`;
    box.textContent = text;
    if (link) {
      const a = el("a", null, link.text);
      a.href = link.href;
      box.append(" ", a);
    }
    box.hidden = false;
  }
}

const config = JSON.parse(document.getElementById("history-config").textContent);
const page = new History(config);
page.start();

/** Read-only hooks for tests and debugging; the page does not depend on them. */
window.whiteboardHistory = Object.freeze({
  get seq() {
    return page.shown;
  },
  elements: () => page.store.list().map((element) => ({ ...element })),
  highlighted: () => [...page.highlight],
});
