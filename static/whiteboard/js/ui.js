// The page around the canvas: connection status, people, notices, the
// read-only banner, the toolbar. User data (names, titles, messages) goes
// into the DOM only through textContent.

import { RECENT_KEY } from "./constants.js";

const NOTICE_MS = 8000;
const MAX_NOTICES = 5;

const $ = (selector) => document.querySelector(selector);

// What a read-only page disables: everything that would change the board.
const DRAWING_CONTROLS =
  "[data-tool], #undo, #redo, #image-button, [data-color], #color, [data-width], [data-note-color]";

export function setStatus(state, text) {
  const el = $("#connection-status");
  el.dataset.state = state;
  el.textContent = text;
}

export function setPendingCount(n) {
  $("#pending-count").textContent = String(n);
  $("#pending-count").parentElement.classList.toggle("has-pending", n > 0);
}

/** A short message in #notices, removed after a while. */
export function notice(text, kind = "info") {
  const box = $("#notices");
  const item = document.createElement("div");
  item.className = `notice ${kind}`;
  item.textContent = text;
  box.append(item);
  while (box.children.length > MAX_NOTICES) box.firstElementChild.remove();
  setTimeout(() => item.remove(), kind === "error" ? NOTICE_MS * 2 : NOTICE_MS);
}

/**
 * The people list: me first, then everyone else, keyed by sid. With follow mode
 * (`follow`: {enabled, following, followers, pick}), the others are buttons that
 * follow them, and badges say who follows me.
 */
export function renderPeople(me, users, follow = null) {
  const list = $("#people");
  const focused = document.activeElement?.closest?.("#people [data-user]")?.dataset.user;
  const items = [];
  if (me) items.push(personItem(me, true, follow));
  for (const user of users.values()) items.push(personItem(user, false, follow));
  list.replaceChildren(...items);
  // Following someone by keyboard re-renders the list: the focus stays on their button.
  if (focused) list.querySelector(`[data-user="${CSS.escape(focused)}"] button`)?.focus();
}

function personItem(user, isMe, follow) {
  const li = document.createElement("li");
  li.dataset.user = user.sid;
  if (isMe) li.classList.add("me");
  const dot = document.createElement("span");
  dot.className = "swatch";
  dot.style.background = user.color;
  const name = document.createElement("span");
  name.className = "name";
  name.textContent = isMe ? `${user.name} (you)` : user.name;
  const badge = (text) => {
    const span = document.createElement("span");
    span.className = "badge";
    span.textContent = text;
    return span;
  };
  if (!follow?.enabled) {
    li.append(dot, name);
  } else if (isMe) {
    li.append(dot, name);
    if (follow.followers.size) li.append(badge(`${follow.followers.size} following you`));
  } else {
    const following = follow.following === user.sid;
    const button = document.createElement("button");
    button.type = "button";
    button.className = "person";
    button.setAttribute("aria-pressed", String(following));
    button.title = following ? `Stop following ${user.name}` : `Follow ${user.name}’s view`;
    button.addEventListener("click", () => follow.pick(user.sid));
    button.append(dot, name);
    if (follow.followers.has(user.sid)) button.append(badge("following you"));
    li.classList.toggle("followed", following);
    li.append(button);
  }
  return li;
}

/** Disable drawing and say why (with an optional {href, text} link), or enable it again. */
export function setReadonly(reason, link = null) {
  const board = $("#board");
  board.dataset.readonly = reason ? "true" : "false";
  const banner = $("#readonly-reason");
  banner.hidden = !reason;
  banner.textContent = reason || "";
  if (reason && link) {
    const a = document.createElement("a");
    a.href = link.href;
    a.textContent = link.text;
    banner.append(" ", a);
  }
  for (const control of document.querySelectorAll(DRAWING_CONTROLS)) control.disabled = Boolean(reason);
}

export function setTitle(title) {
  $("#board-title").textContent = title;
  document.title = `${title} · Whiteboard`;
}

/**
 * Show `name` as the chosen tool. The note tool, and a selection of notes only
 * (`notesSelected`), swap the width presets (notes have no width) for note colours.
 */
export function markTool(name, notesSelected = false) {
  markPressed("[data-tool]", "tool", name);
  $("#board").dataset.tool = name;
  const notes = name === "note" || notesSelected;
  $("#widths").hidden = notes;
  $("#note-colors").hidden = !notes;
}

/** The note colour picked in #note-colors (a note's `fill`). */
export function noteColor() {
  const chosen = $("[data-note-color][aria-pressed='true']") || $("[data-note-color]");
  return chosen.dataset.noteColor;
}

/** aria-pressed="true" on the elements of `selector` whose data-`key` is `value`, false on the others. */
function markPressed(selector, key, value) {
  for (const el of document.querySelectorAll(selector))
    el.setAttribute("aria-pressed", String(el.dataset[key] === value));
}

/** Wire the toolbar's buttons to actions of the board. */
export function bindToolbar(act) {
  for (const button of document.querySelectorAll("[data-tool]")) {
    button.addEventListener("click", () => act(`tool:${button.dataset.tool}`));
  }
  for (const id of ["undo", "redo", "fit", "export-png", "export-svg"]) {
    $(`#${id}`).addEventListener("click", () => act(id));
  }
  $(".board-toolbar").addEventListener("keydown", arrowKeys);
}

const ARROW_STEPS = { ArrowLeft: -1, ArrowRight: 1, Home: -Infinity, End: Infinity };

/** Left/Right (Home/End) move the focus along the toolbar's visible, enabled controls. */
function arrowKeys(event) {
  const step = ARROW_STEPS[event.key];
  if (!step) return;
  const controls = [...event.currentTarget.querySelectorAll("button, input[type=color]")].filter(
    (el) => !el.disabled && el.checkVisibility(),
  );
  const at = controls.indexOf(event.target);
  if (at < 0) return;
  event.preventDefault();
  controls[Math.min(controls.length - 1, Math.max(0, at + step))].focus();
}

/**
 * `changed(field, value)` when the colour or width is picked (on release). #color and #width hold
 * the choice: a swatch or width preset sets their value and fires their events like the picker.
 */
export function bindStyle(changed) {
  const color = $("#color");
  const width = $("#width");
  for (const swatch of document.querySelectorAll(".toolbar .swatch")) {
    // The CSP drops inline style attributes, so each swatch gets its colour here.
    swatch.style.setProperty("--swatch", swatch.dataset.color || swatch.dataset.noteColor);
  }
  for (const swatch of document.querySelectorAll("[data-color]")) {
    swatch.addEventListener("click", () => {
      color.value = swatch.dataset.color;
      color.dispatchEvent(new Event("input", { bubbles: true }));
      color.dispatchEvent(new Event("change", { bubbles: true }));
    });
  }
  for (const preset of document.querySelectorAll("[data-width]")) {
    preset.addEventListener("click", () => {
      width.value = preset.dataset.width;
      width.dispatchEvent(new Event("change", { bubbles: true }));
    });
  }
  for (const swatch of document.querySelectorAll("[data-note-color]")) {
    swatch.addEventListener("click", () => {
      markPressed("[data-note-color]", "noteColor", swatch.dataset.noteColor);
      changed("note-fill", swatch.dataset.noteColor);
    });
  }
  color.addEventListener("input", () => markColor(color.value));
  color.addEventListener("change", (event) => {
    markColor(event.target.value);
    changed("color", event.target.value);
  });
  width.addEventListener("change", (event) => {
    markPressed("[data-width]", "width", event.target.value);
    changed("width", Number(event.target.value));
  });
  markColor(color.value);
  markPressed("[data-width]", "width", width.value);
}

/** The swatch of `value` pressed, or none and the custom picker marked as the choice. */
function markColor(value) {
  markPressed("[data-color]", "color", value.toLowerCase());
  const inPalette = Boolean($(`[data-color="${CSS.escape(value.toLowerCase())}"]`));
  $(".custom-color").classList.toggle("active", !inPalette);
}

/** Rename form: posts to /me/name, then `done(name)`. */
export function bindRename(url, done) {
  const form = $("#guest-name");
  if (!form) return;
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = new FormData(form);
    const answer = await fetch(url, {
      method: "POST",
      body,
      headers: { Accept: "application/json" },
      credentials: "same-origin",
    });
    const data = await answer.json().catch(() => ({}));
    if (answer.ok) done(data.name);
    else notice(data.error || "Could not change your name.", "error");
  });
}

/** Remember this board in the home page's "recently visited" list. */
export function rememberVisit(slug, title) {
  try {
    const key = RECENT_KEY;
    const list = JSON.parse(localStorage.getItem(key) || "[]").filter((b) => b && b.slug !== slug);
    list.unshift({ slug, title, at: Date.now() });
    localStorage.setItem(key, JSON.stringify(list.slice(0, 20)));
  } catch (err) {
    console.warn("could not remember this board", err);
  }
}
