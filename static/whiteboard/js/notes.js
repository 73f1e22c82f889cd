// Sticky notes (PROTOCOL.md 1.1, "Notes"). The note tool places a note (its
// `add` is committed at once) and opens an editor over it: a textarea styled
// like the note. Typing sends drafts of the note with the text so far, so
// others watch it being written; a pause or the end of the edit (a click
// outside, Escape) commits one `update` of its text. A double click on a note
// edits it again. The text reaches the DOM only as the textarea's value.

import { TEXT_MAX_CHARS } from "./constants.js";
import { drawElement, LINE_HEIGHT, NOTE_PAD, round, TEXT_FONT } from "./shapes.js";
import { newId } from "./store.js";

export const NOTE_SIZE = 200;
export const NOTE_FONT = 20;
export const NOTE_COLOR = "#fff3a3";
const PAUSE_MS = 2500; // typing stopped this long: the text so far is committed
// Another page's live edit not refreshed for this long is dropped.
const LIVE_TTL_MS = 15000;

/** A new note of the default size centred on (x, y). */
export function newNote(x, y, fill, color) {
  return {
    id: newId(),
    kind: "note",
    x: round(x - NOTE_SIZE / 2),
    y: round(y - NOTE_SIZE / 2),
    w: NOTE_SIZE,
    h: NOTE_SIZE,
    text: "",
    size: NOTE_FONT,
    fill,
    color,
    opacity: 1,
  };
}

/** The in-place editor of one note at a time. */
export class NoteEditor {
  constructor(app, container) {
    this.app = app;
    this.container = container;
    this.textarea = null;
    this.id = null;
    container.addEventListener("dblclick", (event) => this.doubleClick(event));
  }

  /** A double click on a note with the select or note tool edits it. */
  doubleClick(event) {
    if (event.target.closest("textarea, input, button") || !["select", "note"].includes(this.app.toolName))
      return;
    const rect = this.container.getBoundingClientRect();
    const [x, y] = this.app.viewport.toBoard(event.clientX - rect.left, event.clientY - rect.top);
    const hit = this.app.topmostAt(x, y, 0);
    if (hit && hit.kind === "note") this.edit(hit.id);
  }

  get open() {
    return Boolean(this.textarea);
  }

  /** Edit the note `id` (it must be on the board). */
  edit(id) {
    this.finish();
    const el = this.app.store.get(id);
    if (el?.kind !== "note" || this.app.readonly()) return;
    const textarea = document.createElement("textarea");
    textarea.id = "note-editor";
    textarea.setAttribute("aria-label", "Text of the note");
    textarea.maxLength = TEXT_MAX_CHARS;
    textarea.spellcheck = true;
    textarea.value = el.text;
    // The board's pointer handling must not see presses inside the editor.
    textarea.addEventListener("pointerdown", (event) => event.stopPropagation());
    textarea.addEventListener("keydown", (event) => this.key(event));
    textarea.addEventListener("input", () => this.typed());
    textarea.addEventListener("blur", () => this.finish());
    this.container.append(textarea);
    Object.assign(this, { textarea, id, committed: el.text });
    this.place();
    textarea.focus();
    textarea.setSelectionRange(textarea.value.length, textarea.value.length);
  }

  /** Keep the editor over its note, in the note's style, as the view or the note changes. */
  place() {
    const el = this.textarea && this.app.store.get(this.id);
    if (!el) return;
    const view = this.app.viewport;
    const [sx, sy] = view.toScreen(el.x, el.y);
    const k = view.scale;
    Object.assign(this.textarea.style, {
      left: `${sx}px`,
      top: `${sy}px`,
      width: `${el.w * k}px`,
      height: `${el.h * k}px`,
      padding: `${NOTE_PAD * k}px`,
      font: `${el.size * k}px ${TEXT_FONT}`,
      lineHeight: String(LINE_HEIGHT),
      color: el.color || "#1f2328",
      // Opaque, so it covers the note drawn under it whatever that shows.
      background: el.fill,
    });
  }

  key(event) {
    event.stopPropagation();
    if (event.key === "Escape") {
      event.preventDefault();
      this.finish();
    }
  }

  text() {
    return Array.from(this.textarea.value.replace(/\r\n?/g, "\n")).slice(0, TEXT_MAX_CHARS).join("");
  }

  typed() {
    const el = this.app.store.get(this.id);
    if (!el) return;
    this.app.draft({ ...el, text: this.text() });
    clearTimeout(this.pauseTimer);
    this.pauseTimer = setTimeout(() => this.commitText(), PAUSE_MS);
  }

  /** Commit the text typed so far, if it changed since the last commit. */
  commitText() {
    clearTimeout(this.pauseTimer);
    const el = this.textarea && this.app.store.get(this.id);
    if (!el) return;
    const text = this.text();
    if (text === this.committed) return;
    this.committed = text;
    this.app.commit({ type: "update", cid: newId(), id: this.id, set: { text } });
  }

  /** Close the editor, committing its text; others stop showing the draft. */
  finish() {
    if (!this.textarea) return;
    this.commitText();
    const textarea = this.textarea;
    this.textarea = null;
    this.id = null;
    textarea.remove();
    this.app.draft(null);
  }
}

/** The note tool: a click places a note and opens its editor; a click while editing ends the edit. */
export class NoteTool {
  constructor(app, editor, fill) {
    Object.assign(this, { app, editor, fill, at: null });
  }

  begin([x, y]) {
    if (this.editor.open) {
      this.editor.finish();
      this.at = null;
      return;
    }
    this.at = [x, y];
  }

  /** A click on a note edits it; anywhere else places a new one. */
  end() {
    if (!this.at) return;
    const hit = this.app.topmostAt(...this.at, 0);
    if (hit && hit.kind === "note") {
      this.at = null;
      this.editor.edit(hit.id);
      return;
    }
    const element = newNote(...this.at, this.fill(), this.app.color());
    this.at = null;
    this.app.commit({ type: "add", cid: newId(), element });
    if (this.app.store.get(element.id)) this.editor.edit(element.id);
  }

  move() {}

  cancel() {
    this.at = null;
    this.editor.finish();
  }

  drawOverlay() {}
}

/**
 * Other pages' live edits of notes: drafts of a note already on the board,
 * which the presence layer leaves out (for other kinds such a draft is stale).
 * Each is drawn over the note until its author withdraws it.
 */
export class LiveNotes {
  constructor(store) {
    this.store = store;
    this.edits = new Map(); // sid -> {element, at}
  }

  /** Take a draft frame if it is a live edit (true); any other draft of `sid` ends its edit. */
  draft(sid, element) {
    if (element && element.kind === "note" && this.store.knows(element.id)) {
      this.edits.set(sid, { element, at: performance.now() });
      return true;
    }
    this.edits.delete(sid);
    return false;
  }

  /** `sid` left: its typing is no longer shown. */
  forget(sid) {
    this.edits.delete(sid);
  }

  /** The connection closed: nobody's typing is shown until they type again. */
  reset() {
    this.edits.clear();
  }

  drawOverlay(ctx) {
    for (const el of this.shown()) drawElement(ctx, el);
  }

  /** The edits to draw: those of notes still on the board, refreshed recently. */
  shown() {
    const before = performance.now() - LIVE_TTL_MS;
    const out = [];
    for (const [sid, { element, at }] of this.edits) {
      if (at < before || !this.store.get(element.id)) this.edits.delete(sid);
      else out.push({ ...this.store.get(element.id), text: element.text });
    }
    return out;
  }
}
