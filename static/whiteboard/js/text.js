// The text tool: a click opens a textarea on the board at that spot; Enter
// (without Shift) or leaving it commits an `add` of kind text, Escape cancels.
// The typed text reaches the canvas only through fillText and the DOM only as
// the textarea's value: it is never parsed as markup.

import { TEXT_MAX_CHARS } from "./constants.js";
import { LINE_HEIGHT, round, TEXT_FONT } from "./shapes.js";
import { newId } from "./store.js";

export class TextTool {
  constructor(app, container) {
    this.app = app;
    this.container = container;
    this.editor = null;
  }

  /** Font size in board units, from the width slider: width 4 gives 20 px. */
  size() {
    return Math.min(400, Math.max(10, 8 + this.app.width() * 3));
  }

  /** A press while editing only finishes the edit; a click elsewhere opens one. */
  begin([x, y]) {
    if (this.editor) {
      this.finish(true);
      this.at = null;
      return;
    }
    this.at = [round(x), round(y)];
  }

  end() {
    if (this.at) this.open();
  }

  open() {
    const editor = document.createElement("textarea");
    editor.id = "text-editor";
    editor.setAttribute("aria-label", "Text to place on the board");
    editor.rows = 1;
    const [sx, sy] = this.app.viewport.toScreen(...this.at);
    const px = this.size() * this.app.viewport.scale;
    Object.assign(editor.style, {
      left: `${sx}px`,
      top: `${sy}px`,
      font: `${px}px ${TEXT_FONT}`,
      lineHeight: String(LINE_HEIGHT),
      color: this.app.color(),
    });
    editor.addEventListener("keydown", (event) => this.key(event));
    editor.addEventListener("input", () => this.grow());
    editor.addEventListener("blur", () => this.finish(true));
    this.container.append(editor);
    this.editor = editor;
    this.grow();
    // Opened on pointerup, after the press moved the focus: safe to focus now.
    editor.focus();
  }

  grow() {
    const editor = this.editor;
    editor.style.height = "auto";
    editor.style.width = "auto";
    editor.style.height = `${editor.scrollHeight}px`;
    editor.style.width = `${Math.max(40, editor.scrollWidth + 8)}px`;
  }

  key(event) {
    event.stopPropagation();
    if (event.key === "Escape") {
      event.preventDefault();
      this.finish(false);
    } else if (event.key === "Enter" && !event.shiftKey) {
      event.preventDefault();
      this.finish(true);
    }
  }

  /** Close the editor; commit the text if asked and there is any. */
  finish(commit) {
    const editor = this.editor;
    if (!editor) return;
    this.editor = null;
    const chars = Array.from(editor.value.replace(/\r\n?/g, "\n"));
    editor.remove();
    const text = chars.slice(0, TEXT_MAX_CHARS).join("");
    if (!commit || !text.trim()) return;
    const [x, y] = this.at;
    const element = {
      id: newId(),
      kind: "text",
      x,
      y,
      text,
      size: this.size(),
      color: this.app.color(),
      width: this.app.width(),
      fill: null,
      opacity: 1,
    };
    this.app.commit({ type: "add", cid: newId(), element });
  }

  move() {}
  cancel() {
    this.finish(false);
  }
  drawOverlay() {}
}
