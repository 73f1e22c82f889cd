// The page around the canvas: connection status, people, notices, the
// read-only banner, the toolbar. User data (names, titles, messages) goes
// into the DOM only through textContent.

const NOTICE_MS = 8000;
const MAX_NOTICES = 5;

const $ = (selector) => document.querySelector(selector);

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

/** The people list: me first, then everyone else, keyed by sid. */
export function renderPeople(me, users) {
  const list = $("#people");
  const items = [];
  if (me) items.push(personItem(me, true));
  for (const user of users.values()) items.push(personItem(user, false));
  list.replaceChildren(...items);
}

function personItem(user, isMe) {
  const li = document.createElement("li");
  li.dataset.user = user.sid;
  if (isMe) li.classList.add("me");
  const dot = document.createElement("span");
  dot.className = "swatch";
  dot.style.background = user.color;
  const name = document.createElement("span");
  name.className = "name";
  name.textContent = isMe ? `${user.name} (you)` : user.name;
  li.append(dot, name);
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
  for (const button of document.querySelectorAll("[data-tool], #undo, #redo"))
    button.disabled = Boolean(reason);
}

export function setTitle(title) {
  $("#board-title").textContent = title;
  document.title = `${title} · Whiteboard`;
}

export function markTool(name) {
  for (const button of document.querySelectorAll("[data-tool]")) {
    button.setAttribute("aria-pressed", String(button.dataset.tool === name));
  }
  $("#board").dataset.tool = name;
}

/** Wire the toolbar's buttons to actions of the board. */
export function bindToolbar(act) {
  for (const button of document.querySelectorAll("[data-tool]")) {
    button.addEventListener("click", () => act(`tool:${button.dataset.tool}`));
  }
  for (const id of ["undo", "redo", "fit", "export-png", "export-svg"]) {
    $(`#${id}`).addEventListener("click", () => act(id));
  }
}

/** `changed(field, value)` when the colour or width is picked (on release). */
export function bindStyle(changed) {
  $("#color").addEventListener("change", (event) => changed("color", event.target.value));
  $("#width").addEventListener("change", (event) => changed("width", Number(event.target.value)));
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
    const key = "whiteboard.recent";
    const list = JSON.parse(localStorage.getItem(key) || "[]").filter((b) => b && b.slug !== slug);
    list.unshift({ slug, title, at: Date.now() });
    localStorage.setItem(key, JSON.stringify(list.slice(0, 20)));
  } catch (err) {
    console.warn("could not remember this board", err);
  }
}
