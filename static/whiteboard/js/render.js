// Drawing the board. Committed elements are rendered into an offscreen layer
// only when they change or when a pan/zoom has settled; while the view moves,
// the layer's bitmap is moved and scaled instead of redrawing every element.
// A new element on top is drawn onto the layer alone. Each full render skips
// elements outside the view and reuses each element's cached Path2D.
// Drafts, cursors and the selection live on a second, cheap overlay canvas.

import { bbox, boxesIntersect, drawElement } from "./shapes.js";

const SETTLE_MS = 120;

export class Renderer {
  constructor(container, canvas, overlay, store, viewport) {
    Object.assign(this, { container, canvas, overlay, store, viewport });
    this.ctx = canvas.getContext("2d");
    this.overlayCtx = overlay.getContext("2d");
    this.layer = document.createElement("canvas");
    this.layerCtx = this.layer.getContext("2d");
    this.layerView = null; // the view the layer was rendered for
    this.layerValid = false;
    this.hidden = new Set(); // ids drawn elsewhere (being moved)
    this.interacting = false;
    this.drawOverlay = () => {};
    this.scheduled = false;
    this.stats = { fullRenders: 0, drawn: 0 };
    // false (?nocache=1) redraws every element on every frame: the baseline
    // that bench/frames.py compares the caching against.
    this.caching = true;
    store.onChange((change) => this.storeChanged(change));
    new ResizeObserver(() => this.resize()).observe(container);
    this.resize();
  }

  get dpr() {
    return window.devicePixelRatio || 1;
  }

  /** Canvases sized in device pixels, so lines stay crisp on high-DPI screens. */
  resize() {
    const width = this.container.clientWidth;
    const height = this.container.clientHeight;
    const dpr = this.dpr;
    for (const c of [this.canvas, this.overlay, this.layer]) {
      c.width = Math.max(1, Math.round(width * dpr));
      c.height = Math.max(1, Math.round(height * dpr));
    }
    this.viewport.resize(width, height);
    this.invalidate();
  }

  storeChanged({ full, added }) {
    if (full || !this.layerValid) this.invalidate();
    else this.drawOnLayer(added);
  }

  invalidate() {
    this.layerValid = false;
    this.schedule();
  }

  /** The view moved; while `interacting`, the full render waits until it settles. */
  viewChanged(interacting = false) {
    this.interacting = interacting;
    clearTimeout(this.settleTimer);
    if (interacting) {
      this.settleTimer = setTimeout(() => {
        this.interacting = false;
        this.schedule();
      }, SETTLE_MS);
    }
    this.schedule();
  }

  schedule() {
    if (this.scheduled) return;
    this.scheduled = true;
    requestAnimationFrame(() => {
      this.scheduled = false;
      this.frame();
    });
  }

  frame() {
    const stale = !this.layerValid || (!this.interacting && !this.layerMatchesView());
    if (stale || !this.caching) this.renderLayer();
    this.blit();
    this.renderOverlay();
  }

  layerMatchesView() {
    const v = this.layerView;
    const now = this.viewport;
    return (
      v &&
      v.x === now.x &&
      v.y === now.y &&
      v.scale === now.scale &&
      v.width === now.width &&
      v.height === now.height
    );
  }

  setTransform(ctx, view) {
    const k = view.scale * this.dpr;
    ctx.setTransform(k, 0, 0, k, -view.x * k, -view.y * k);
  }

  renderLayer() {
    const view = { ...this.viewport.state(), width: this.viewport.width, height: this.viewport.height };
    const ctx = this.layerCtx;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.clearRect(0, 0, this.layer.width, this.layer.height);
    this.setTransform(ctx, view);
    const visible = this.viewport.visibleBox();
    let drawn = 0;
    for (const el of this.store.list()) {
      if (this.hidden.has(el.id)) continue;
      if (this.caching && !boxesIntersect(bbox(el), visible)) continue;
      drawElement(ctx, el, this.caching);
      drawn++;
    }
    ctx.globalAlpha = 1;
    this.layerView = view;
    this.layerValid = true;
    this.stats.fullRenders++;
    this.stats.drawn = drawn;
  }

  drawOnLayer(elements) {
    this.setTransform(this.layerCtx, this.layerView);
    for (const el of elements) drawElement(this.layerCtx, el);
    this.layerCtx.globalAlpha = 1;
    this.schedule();
  }

  /** Copy the layer to the screen, moved and scaled if the view changed since. */
  blit() {
    const ctx = this.ctx;
    const from = this.layerView;
    const to = this.viewport;
    const k = to.scale / from.scale;
    const dpr = this.dpr;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.clearRect(0, 0, this.canvas.width, this.canvas.height);
    const dx = (from.x - to.x) * to.scale * dpr;
    const dy = (from.y - to.y) * to.scale * dpr;
    ctx.drawImage(this.layer, dx, dy, this.layer.width * k, this.layer.height * k);
  }

  renderOverlay() {
    const ctx = this.overlayCtx;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.clearRect(0, 0, this.overlay.width, this.overlay.height);
    this.setTransform(ctx, this.viewport);
    this.drawOverlay(ctx);
    ctx.globalAlpha = 1;
  }
}
