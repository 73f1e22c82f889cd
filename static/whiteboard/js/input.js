// Pointer, wheel and keyboard input on the board. Pointer events cover mouse,
// touch and pen alike. Pan: space-drag, middle button, two fingers (or any
// finger on a read-only board). Zoom: wheel (and trackpad pinch), two-finger pinch.
// Moving the view by hand ends follow mode.

const WHEEL_ZOOM = 0.0015;

export class Input {
  constructor(app, surface) {
    this.app = app;
    this.surface = surface;
    this.pointers = new Map(); // pointerId -> [x, y] on screen
    this.mode = null; // "tool" | "pan" | "pinch"
    this.space = false;
    this.lastCursor = 0;
    surface.addEventListener("pointerdown", (e) => this.down(e));
    surface.addEventListener("pointermove", (e) => this.move(e));
    surface.addEventListener("pointerup", (e) => this.up(e));
    surface.addEventListener("pointercancel", (e) => this.up(e, true));
    surface.addEventListener("wheel", (e) => this.wheel(e), { passive: false });
    surface.addEventListener("contextmenu", (e) => e.preventDefault());
    document.addEventListener("keydown", (e) => this.keydown(e));
    document.addEventListener("keyup", (e) => this.keyup(e));
  }

  local(event) {
    const rect = this.surface.getBoundingClientRect();
    return [event.clientX - rect.left, event.clientY - rect.top];
  }

  down(event) {
    if (event.target.id === "text-editor") return;
    const at = this.local(event);
    this.pointers.set(event.pointerId, at);
    try {
      this.surface.setPointerCapture(event.pointerId);
    } catch {
      // A pointer the browser no longer tracks (or a synthetic one): no capture.
    }
    if (this.pointers.size === 2 && event.pointerType === "touch") {
      if (this.mode === "tool") this.app.tool().cancel();
      this.startPinch();
    } else if (this.pointers.size === 1) {
      this.startSingle(event, at);
    }
  }

  startSingle(event, at) {
    // A finger on a read-only board pans; a mouse there does nothing.
    const readonlyTouch = this.app.readonly() && event.pointerType === "touch";
    const pan = event.button === 1 || event.button === 2 || this.space || readonlyTouch;
    if (event.button === 1) event.preventDefault();
    if (pan) {
      this.mode = "pan";
      this.last = at;
      this.surface.classList.add("panning");
      return;
    }
    if (event.button !== 0 || this.app.readonly()) return;
    this.mode = "tool";
    this.app.tool().begin(this.app.viewport.toBoard(...at), event);
    this.app.overlayChanged();
  }

  startPinch() {
    const [a, b] = [...this.pointers.values()];
    this.mode = "pinch";
    this.pinch = { distance: Math.hypot(a[0] - b[0], a[1] - b[1]) || 1, center: mid(a, b) };
  }

  move(event) {
    const at = this.local(event);
    this.sendCursor(at);
    if (!this.pointers.has(event.pointerId)) return;
    this.pointers.set(event.pointerId, at);
    if (this.mode === "pan") {
      this.app.follow.userMoved();
      this.app.viewport.panBy(at[0] - this.last[0], at[1] - this.last[1]);
      this.last = at;
      this.app.renderer.viewChanged(true);
    } else if (this.mode === "pinch" && this.pointers.size >= 2) {
      this.movePinch();
    } else if (this.mode === "tool") {
      const events = event.getCoalescedEvents ? event.getCoalescedEvents() : [event];
      for (const e of events.length ? events : [event])
        this.app.tool().move(this.app.viewport.toBoard(...this.local(e)), e);
      this.app.overlayChanged();
    }
  }

  movePinch() {
    const [a, b] = [...this.pointers.values()];
    const distance = Math.hypot(a[0] - b[0], a[1] - b[1]) || 1;
    const center = mid(a, b);
    const view = this.app.viewport;
    this.app.follow.userMoved();
    view.panBy(center[0] - this.pinch.center[0], center[1] - this.pinch.center[1]);
    view.zoomAt(center[0], center[1], distance / this.pinch.distance);
    this.pinch = { distance, center };
    this.app.renderer.viewChanged(true);
  }

  up(event, cancelled = false) {
    if (!this.pointers.has(event.pointerId)) return;
    this.pointers.delete(event.pointerId);
    if (this.mode === "tool") {
      if (cancelled) this.app.tool().cancel();
      else this.app.tool().end(this.app.viewport.toBoard(...this.local(event)), event);
      this.app.overlayChanged();
    }
    if (this.pointers.size === 0) {
      this.mode = null;
      this.surface.classList.remove("panning");
    } else if (this.mode === "pinch" && this.pointers.size === 1) {
      this.mode = "pan";
      this.last = [...this.pointers.values()][0];
    }
  }

  sendCursor(at) {
    const now = performance.now();
    if (now - this.lastCursor < 50) return;
    this.lastCursor = now;
    this.app.cursor(this.app.viewport.toBoard(...at));
  }

  wheel(event) {
    event.preventDefault();
    const unit = event.deltaMode === 1 ? 16 : event.deltaMode === 2 ? 400 : 1;
    const [sx, sy] = this.local(event);
    this.app.follow.userMoved();
    if (event.shiftKey && !event.ctrlKey) {
      this.app.viewport.panBy(-event.deltaY * unit, -event.deltaX * unit);
    } else {
      this.app.viewport.zoomAt(sx, sy, Math.exp(-event.deltaY * unit * WHEEL_ZOOM * (event.ctrlKey ? 5 : 1)));
    }
    this.app.renderer.viewChanged(true);
  }

  keydown(event) {
    if (isTyping(event.target)) return;
    // Space on a focused button presses it (a person in the people list, say), it does not pan.
    if (event.key === " " && event.target instanceof HTMLButtonElement) return;
    if (event.key === " ") {
      this.space = true;
      this.surface.classList.add("can-pan");
      event.preventDefault();
      return;
    }
    // Escape also stops following someone (and still deselects).
    if (event.key === "Escape") this.app.follow.stop();
    const action = shortcut(event);
    if (action) {
      event.preventDefault();
      this.app.shortcut(action);
    }
  }

  keyup(event) {
    if (event.key === " ") {
      this.space = false;
      this.surface.classList.remove("can-pan");
    }
  }
}

const TOOL_KEYS = {
  p: "pen",
  l: "line",
  a: "arrow",
  r: "rect",
  o: "ellipse",
  t: "text",
  n: "note",
  e: "eraser",
  v: "select",
};

/** The action a key press stands for, or null. */
export function shortcut(event) {
  const key = event.key.toLowerCase();
  const mod = event.ctrlKey || event.metaKey;
  if (mod && key === "z") return event.shiftKey ? "redo" : "undo";
  if (mod && key === "y") return "redo";
  if (mod || event.altKey) return null;
  if (key === "delete" || key === "backspace") return "delete";
  if (key === "escape") return "deselect";
  if (key === "f") return "fit";
  if (key === "+" || key === "=") return "zoom-in";
  if (key === "-") return "zoom-out";
  if (key === "i") return "insert-image";
  return TOOL_KEYS[key] ? `tool:${TOOL_KEYS[key]}` : null;
}

function isTyping(target) {
  return (
    target instanceof HTMLElement &&
    (target.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName)) &&
    target.type !== "range" &&
    target.type !== "color"
  );
}

function mid(a, b) {
  return [(a[0] + b[0]) / 2, (a[1] + b[1]) / 2];
}
