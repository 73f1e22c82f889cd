// Images on the board (PROTOCOL.md 1.1, "Images"). The files an `image`
// element shows are loaded once per asset id and kept; a loaded one asks for a
// new render. Uploads come from the file picker, a drop of files on the board
// and a paste: each is checked against the server's limits, sent with
// XMLHttpRequest (which reports progress) while a placeholder shows it coming,
// and becomes an `add` of an image element once the server answers 201.
// Nothing here touches the DOM when the module is imported.

import { newId } from "./store.js";
import { notice } from "./ui.js";

const ACCEPTED = ["image/png", "image/jpeg", "image/gif", "image/webp"];
const UNSUPPORTED = "Only PNG, JPEG, GIF and WebP images can be added.";
// A new image fills at most this part of the view.
const VIEW_SHARE = 0.6;

let assetBase = "";
const assets = new Map(); // id -> {img, state: "loading" | "loaded" | "failed", waiting: [resolve]}
const loadListeners = [];

/** Where the files live and uploads go: `/b/<slug>/assets/`; set once by the board page. */
export function setAssetBase(base) {
  assetBase = base;
}

export function assetUrl(id) {
  return `${assetBase}${encodeURIComponent(id)}`;
}

/** `fn(id)` whenever an asset's file has loaded (or failed): time to draw again. */
export function onAssetLoad(fn) {
  loadListeners.push(fn);
}

function entry(id) {
  let item = assets.get(id);
  if (item) return item;
  const img = new Image();
  item = { img, state: "loading", waiting: [] };
  assets.set(id, item);
  const settle = (state) => {
    item.state = state;
    for (const resolve of item.waiting.splice(0)) resolve(state === "loaded" ? img : null);
    for (const fn of loadListeners) fn(id);
  };
  img.onload = () => settle("loaded");
  img.onerror = () => settle("failed");
  img.src = assetUrl(id);
  return item;
}

/** The loaded picture of an asset, or null while it loads (the load starts) or if it failed. */
export function assetImage(id) {
  if (typeof Image === "undefined" || !id) return null;
  const item = entry(id);
  return item.state === "loaded" ? item.img : null;
}

/** A promise of the loaded picture of an asset, or null if it cannot be loaded. */
export function loadAsset(id) {
  const item = entry(id);
  if (item.state !== "loading") return Promise.resolve(item.state === "loaded" ? item.img : null);
  return new Promise((resolve) => item.waiting.push(resolve));
}

/** The asset's file as a data: URL (for an SVG that stands alone), or null. */
export async function assetDataUrl(id) {
  const answer = await fetch(assetUrl(id), { credentials: "same-origin" });
  if (!answer.ok) return null;
  const blob = await answer.blob();
  if (!ACCEPTED.includes(blob.type)) return null;
  return new Promise((resolve) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => resolve(null);
    reader.readAsDataURL(blob);
  });
}

/** The size (w, h) of a picture of w0 x h0 scaled down, never up, to fit maxW x maxH. */
export function fitSize(w0, h0, maxW, maxH) {
  const k = Math.min(1, maxW / w0, maxH / h0);
  return [Math.max(1, Math.round(w0 * k)), Math.max(1, Math.round(h0 * k))];
}

/** Why a file cannot be uploaded before sending it (type, size), or null. */
export function refusal(file, limits) {
  if (!ACCEPTED.includes(file.type)) return UNSUPPORTED;
  const max = limits?.max_asset_bytes;
  if (max && file.size > max)
    return `The image is ${megabytes(file.size)}; at most ${megabytes(max)} can be added.`;
  if (!file.size) return "The file is empty.";
  return null;
}

function megabytes(n) {
  return `${(n / (1024 * 1024)).toFixed(1)} MB`;
}

/** The CSRF token the page's forms carry (or Django's cookie), for the upload. */
function csrfToken() {
  const input = document.querySelector("input[name=csrfmiddlewaretoken]");
  if (input) return input.value;
  const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
  return match ? decodeURIComponent(match[1]) : "";
}

/** File picker, drop and paste on the board page: each image is uploaded and added. */
export class ImageUploads {
  constructor(app, surface) {
    Object.assign(this, { app, surface });
    const button = document.getElementById("image-button");
    const picker = document.getElementById("image-file");
    if (button && picker) {
      button.addEventListener("click", () => picker.click());
      picker.addEventListener("change", () => {
        this.addFiles([...picker.files], null);
        picker.value = "";
      });
    }
    surface.addEventListener("dragover", (event) => this.dragover(event));
    surface.addEventListener("drop", (event) => this.drop(event));
    document.addEventListener("paste", (event) => this.paste(event));
  }

  dragover(event) {
    if (!event.dataTransfer || ![...event.dataTransfer.types].includes("Files")) return;
    event.preventDefault();
    event.dataTransfer.dropEffect = this.app.readonly() ? "none" : "copy";
  }

  drop(event) {
    const files = event.dataTransfer ? [...event.dataTransfer.files] : [];
    if (!files.length) return;
    event.preventDefault();
    const rect = this.surface.getBoundingClientRect();
    this.addFiles(files, [event.clientX - rect.left, event.clientY - rect.top]);
  }

  /** Ctrl+V of an image; a paste into a text field stays that field's. */
  paste(event) {
    const target = event.target;
    if (
      target instanceof HTMLElement &&
      (target.isContentEditable || /^(INPUT|TEXTAREA)$/.test(target.tagName))
    )
      return;
    const files = event.clipboardData ? [...event.clipboardData.files] : [];
    if (!files.length) return;
    event.preventDefault();
    this.addFiles(files, null);
  }

  /** Upload each file; `at` is the screen point (CSS px in the board) they go to, else the view's centre. */
  addFiles(files, at) {
    if (this.app.readonly()) {
      notice("You cannot add images to this board.", "error");
      return;
    }
    const centre = at || [this.app.viewport.width / 2, this.app.viewport.height / 2];
    files.forEach((file, i) => {
      this.upload(file, [centre[0] + i * 24, centre[1] + i * 24]);
    });
  }

  upload(file, at) {
    const why = refusal(file, this.app.limits());
    if (why) {
      notice(`Could not add ${file.name || "the image"}: ${why}`, "error");
      return;
    }
    const placeholder = new Placeholder(this.surface, at);
    const request = new XMLHttpRequest();
    request.open("POST", assetBase);
    request.setRequestHeader("X-CSRFToken", csrfToken());
    request.setRequestHeader("Accept", "application/json");
    request.responseType = "json";
    request.upload.onprogress = (event) => {
      if (event.lengthComputable) placeholder.progress(event.loaded / event.total);
    };
    request.onload = () => {
      placeholder.remove();
      if (request.status === 201 && request.response && request.response.asset)
        this.place(request.response, at);
      else this.failed(file, request);
    };
    request.onerror = () => {
      placeholder.remove();
      notice(`Could not add ${file.name || "the image"}: the upload did not reach the server.`, "error");
    };
    const body = new FormData();
    body.append("file", file, file.name || "image");
    request.send(body);
  }

  failed(file, request) {
    const answer = request.response || {};
    const why = answer.message || answer.error || `the server answered ${request.status}.`;
    notice(`Could not add ${file.name || "the image"}: ${why}`, "error");
  }

  /** The uploaded image as an element, centred on `at`, scaled down to fit the view. */
  place(answer, at) {
    const view = this.app.viewport;
    const [w, h] = fitSize(
      answer.w,
      answer.h,
      (view.width * VIEW_SHARE) / view.scale,
      (view.height * VIEW_SHARE) / view.scale,
    );
    const [cx, cy] = view.toBoard(...at);
    const element = {
      id: newId(),
      kind: "image",
      x: Math.round(cx - w / 2),
      y: Math.round(cy - h / 2),
      asset: answer.asset,
      w,
      h,
      opacity: 1,
    };
    this.app.commit({ type: "add", cid: newId(), element });
  }
}

/** What shows on the board while an image uploads: a box with a progress bar. */
class Placeholder {
  constructor(surface, [x, y]) {
    const box = document.createElement("div");
    box.className = "upload-placeholder";
    box.setAttribute("role", "progressbar");
    box.setAttribute("aria-label", "Uploading an image");
    box.setAttribute("aria-valuemin", "0");
    box.setAttribute("aria-valuemax", "100");
    box.setAttribute("aria-valuenow", "0");
    const bar = document.createElement("div");
    bar.className = "upload-progress";
    box.append(bar);
    box.style.left = `${x}px`;
    box.style.top = `${y}px`;
    surface.append(box);
    Object.assign(this, { box, bar });
  }

  progress(fraction) {
    const percent = Math.round(fraction * 100);
    this.bar.style.width = `${percent}%`;
    this.box.setAttribute("aria-valuenow", String(percent));
  }

  remove() {
    this.box.remove();
  }
}
