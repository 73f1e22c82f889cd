// Logging out clears what this browser keeps of the account's work: the
// unsent changes of every board and the "recently visited" list. On a shared
// computer the next person sees neither. Unsent changes are counted first, and
// the user may stay logged in to let them reach the server.

import { LOGOUT_EVENT, PENDING_KEY_PREFIX, RECENT_KEY } from "./constants.js";

function pendingKeys() {
  const keys = [];
  for (let i = 0; i < localStorage.length; i += 1) {
    const key = localStorage.key(i);
    if (key?.startsWith(PENDING_KEY_PREFIX)) keys.push(key);
  }
  return keys;
}

function countUnsent(keys) {
  let count = 0;
  for (const key of keys) {
    try {
      const items = JSON.parse(localStorage.getItem(key) || "[]");
      if (Array.isArray(items)) count += items.length;
    } catch {
      count += 1; // unreadable, but still something left behind
    }
  }
  return count;
}

/** Whether to go on logging out: asks only when changes would be lost. */
function confirmDiscard(count) {
  if (!count) return true;
  const changes = count === 1 ? "1 change" : `${count} changes`;
  return window.confirm(
    `${changes} on this computer ${count === 1 ? "has" : "have"} not reached the server yet. ` +
      "Logging out discards them. Log out anyway?",
  );
}

export function clearBrowser() {
  // First: an open board page stops writing its queue back (store.js).
  document.dispatchEvent(new CustomEvent(LOGOUT_EVENT));
  for (const key of pendingKeys()) localStorage.removeItem(key);
  localStorage.removeItem(RECENT_KEY);
}

function bind() {
  const form = document.getElementById("logout-form");
  if (!form) return;
  form.addEventListener("submit", (event) => {
    let keys = [];
    try {
      keys = pendingKeys();
    } catch {
      return; // no localStorage: nothing kept, nothing to clear
    }
    if (!confirmDiscard(countUnsent(keys))) {
      event.preventDefault();
      return;
    }
    clearBrowser();
  });
}

bind();
