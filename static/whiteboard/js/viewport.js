// The mapping between board coordinates and the screen: screen = (board - origin) * scale.

export const MIN_SCALE = 0.02;
export const MAX_SCALE = 40;
// The protocol's bound on every coordinate (constants.js), for follow.js and presence.js.
export { COORD_LIMIT } from "./constants.js";

// The view's centre stays well inside COORD_LIMIT, so what is drawn and every
// cursor sent is in range.
const CENTRE_LIMIT = 850000;

export class Viewport {
  constructor() {
    this.x = 0; // board coordinate at the left edge
    this.y = 0; // board coordinate at the top edge
    this.scale = 1;
    this.width = 1; // CSS pixels
    this.height = 1;
    this.version = 0; // bumped on every change, so caches can tell
    this.listeners = [];
  }

  /** Call `listener(reason)` after every change: "resize", "pan", "zoom", "fit" or "set". */
  onChange(listener) {
    this.listeners.push(listener);
  }

  changed(reason) {
    this.version++;
    for (const listener of this.listeners) listener(reason);
  }

  toBoard(sx, sy) {
    return [this.x + sx / this.scale, this.y + sy / this.scale];
  }

  toScreen(bx, by) {
    return [(bx - this.x) * this.scale, (by - this.y) * this.scale];
  }

  /** The visible part of the board, [minX, minY, maxX, maxY]. */
  visibleBox() {
    return [this.x, this.y, this.x + this.width / this.scale, this.y + this.height / this.scale];
  }

  resize(width, height) {
    this.width = Math.max(1, width);
    this.height = Math.max(1, height);
    this.changed("resize");
  }

  panBy(dx, dy) {
    this.x -= dx / this.scale;
    this.y -= dy / this.scale;
    this.clamp();
    this.changed("pan");
  }

  /** Zoom by `factor`, keeping the board point under (sx, sy) in place. */
  zoomAt(sx, sy, factor) {
    const [bx, by] = this.toBoard(sx, sy);
    this.scale = Math.min(MAX_SCALE, Math.max(MIN_SCALE, this.scale * factor));
    this.x = bx - sx / this.scale;
    this.y = by - sy / this.scale;
    this.clamp();
    this.changed("zoom");
  }

  /** Show the whole box with a margin; an empty board goes back to the origin. */
  fit(box, margin = 40, maxScale = 4) {
    if (!box) {
      Object.assign(this, { x: 0, y: 0, scale: 1 });
    } else {
      const w = Math.max(1, box[2] - box[0]);
      const h = Math.max(1, box[3] - box[1]);
      const scale = Math.min((this.width - 2 * margin) / w, (this.height - 2 * margin) / h, maxScale);
      this.scale = Math.min(MAX_SCALE, Math.max(MIN_SCALE, scale));
      this.x = (box[0] + box[2]) / 2 - this.width / 2 / this.scale;
      this.y = (box[1] + box[3]) / 2 - this.height / 2 / this.scale;
    }
    this.changed("fit");
  }

  /** Show exactly this view (top-left corner and scale), as follow mode computes it. */
  setView({ x, y, scale }) {
    this.scale = Math.min(MAX_SCALE, Math.max(MIN_SCALE, scale));
    this.x = x;
    this.y = y;
    this.clamp();
    this.changed("set");
  }

  /** Whether the whole box is on screen now. */
  shows(box) {
    const view = this.visibleBox();
    return box[0] >= view[0] && box[1] >= view[1] && box[2] <= view[2] && box[3] <= view[3];
  }

  clamp() {
    const cx = this.x + this.width / 2 / this.scale;
    const cy = this.y + this.height / 2 / this.scale;
    this.x += Math.max(-CENTRE_LIMIT, Math.min(CENTRE_LIMIT, cx)) - cx;
    this.y += Math.max(-CENTRE_LIMIT, Math.min(CENTRE_LIMIT, cy)) - cy;
  }

  /** The view as plain data: top-left corner, scale and the screen size in CSS pixels. */
  state() {
    return { x: this.x, y: this.y, scale: this.scale, width: this.width, height: this.height };
  }
}
