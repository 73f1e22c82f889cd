// Drawing the board. Committed elements are rendered into an offscreen layer
// only when they change or when a pan/zoom has settled; while the view moves,
// the layer's bitmap is moved and scaled instead of redrawing every element.
// A new element on top is drawn onto the layer alone. Each full render skips
// elements outside the view and reuses each element's cached Path2D.
// A big board's full render is spread over several frames (about 8 ms each)
// into a back buffer, shown once complete, so no frame stalls; changes that
// arrive meanwhile are drawn on top of it or start the next render.
// Drafts, cursors and the selection live on a second, cheap overlay canvas.

import { bbox, boxesIntersect, drawElement } from "./shapes.js";

const SETTLE_MS = 120;
const SLICE_MS = 8; // drawing time per frame for a render spread over frames
const SYNC_LIMIT = 2000; // boards up to this many elements render in one go
const CHUNK = 100; // elements drawn between two looks at the clock
// The clock sees only the recording of draw calls; the raster comes later in
// the frame, so a frame also stops after this many elements.
const PER_FRAME = 1000;

export class Renderer {
  constructor(container, canvas, overlay, store, viewport) {
    Object.assign(this, { container, canvas, overlay, store, viewport });
    this.ctx = canvas.getContext("2d");
    this.overlayCtx = overlay.getContext("2d");
    this.layer = document.createElement("canvas");
    this.layerCtx = this.layer.getContext("2d");
    this.layerView = null; // the view the layer was rendered for
    this.layerValid = false;
    this.back = document.createElement("canvas"); // where a sliced render goes
    this.job = null; // the sliced render in progress
    this.epoch = 0; // bumped by every change that needs a full render
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
    this.job = null;
    for (const c of [this.canvas, this.overlay, this.layer, this.back]) {
      c.width = Math.max(1, Math.round(width * dpr));
      c.height = Math.max(1, Math.round(height * dpr));
    }
    this.viewport.resize(width, height);
    this.invalidate();
  }

  storeChanged({ full, added }) {
    if (full || (!this.layerValid && !this.job)) this.invalidate();
    else this.drawOnLayer(added);
  }

  invalidate() {
    this.epoch++;
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
    if (!this.caching || !this.layerView) this.renderLayer();
    else if (this.interacting) this.whileMoving();
    else if (!this.job && (!this.layerValid || !this.layerMatchesView())) this.startRender();
    if (this.job) this.continueRender();
    this.blit();
    this.renderOverlay();
  }

  /** During a pan or zoom only the layer's bitmap moves; a small board still shows changes. */
  whileMoving() {
    this.job = null;
    if (!this.layerValid && this.store.list().length <= SYNC_LIMIT) this.renderLayer();
  }

  /** A full render: at once for a small board, else over several frames. */
  startRender() {
    const list = this.store.list();
    if (!this.layerView || list.length <= SYNC_LIMIT) {
      this.renderLayer();
      return;
    }
    const view = this.currentView();
    const ctx = this.back.getContext("2d");
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.clearRect(0, 0, this.back.width, this.back.height);
    this.setTransform(ctx, view);
    const visible = this.viewport.visibleBox();
    this.job = { ctx, view, visible, list, index: 0, epoch: this.epoch, extra: [], drawn: 0 };
  }

  continueRender() {
    const job = this.job;
    const until = performance.now() + SLICE_MS;
    const last = Math.min(job.list.length, job.index + PER_FRAME);
    while (job.index < last && performance.now() < until) {
      const end = Math.min(last, job.index + CHUNK);
      for (; job.index < end; job.index++) {
        const el = job.list[job.index];
        if (this.hidden.has(el.id) || !boxesIntersect(bbox(el), job.visible)) continue;
        drawElement(job.ctx, el);
        job.drawn++;
      }
    }
    if (job.index < job.list.length) this.schedule();
    else this.finishRender(job);
  }

  /** Show the finished back buffer; a change made meanwhile gets the next render. */
  finishRender(job) {
    for (const el of job.extra) drawElement(job.ctx, el);
    job.ctx.globalAlpha = 1;
    [this.layer, this.back] = [this.back, this.layer];
    this.layerCtx = this.layer.getContext("2d");
    this.layerView = job.view;
    this.layerValid = job.epoch === this.epoch;
    this.job = null;
    this.stats.fullRenders++;
    this.stats.drawn = job.drawn;
    if (!this.layerValid || !this.layerMatchesView()) this.schedule();
  }

  currentView() {
    return { ...this.viewport.state(), width: this.viewport.width, height: this.viewport.height };
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
    this.job = null;
    const view = this.currentView();
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
    if (this.job) this.job.extra.push(...elements);
    if (!this.layerView) return;
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
