// The home page's "recently visited" list, kept in localStorage by the board page.

import { RECENT_KEY } from "./constants.js";

function recent() {
  try {
    const list = JSON.parse(localStorage.getItem(RECENT_KEY) || "[]");
    return Array.isArray(list) ? list.filter((b) => b && /^[a-z0-9-]{1,64}$/.test(b.slug)) : [];
  } catch {
    return [];
  }
}

function show() {
  const boards = recent();
  if (!boards.length) return;
  const items = boards.map((board) => {
    const li = document.createElement("li");
    const link = document.createElement("a");
    link.href = `/b/${board.slug}/`;
    link.textContent = board.title || board.slug;
    const when = document.createElement("span");
    when.className = "when";
    when.textContent = ` · ${new Date(board.at).toLocaleString()}`;
    li.append(link, when);
    return li;
  });
  document.getElementById("recent").replaceChildren(...items);
}

show();
