// The few browser APIs the page's pure modules use, for Node's test runner:
// an in-memory Storage (localStorage), `document` as a plain EventTarget (the
// store listens on it for the logout event), `navigator.onLine`, and Web Crypto
// on Node 18, where it is not yet a global. Imported before the modules under test.

import { webcrypto } from "node:crypto";

/** The Storage interface of the Web Storage spec, kept in a Map. */
export class MemoryStorage {
  constructor() {
    this.items = new Map();
  }

  get length() {
    return this.items.size;
  }

  key(index) {
    return [...this.items.keys()][index] ?? null;
  }

  getItem(key) {
    return this.items.has(String(key)) ? this.items.get(String(key)) : null;
  }

  setItem(key, value) {
    this.items.set(String(key), String(value));
  }

  removeItem(key) {
    this.items.delete(String(key));
  }

  clear() {
    this.items.clear();
  }
}

/** A fresh localStorage and document for one test; returns the storage. */
export function freshBrowser() {
  const storage = new MemoryStorage();
  globalThis.localStorage = storage;
  globalThis.document = new EventTarget();
  return storage;
}

if (!globalThis.crypto) globalThis.crypto = webcrypto;
if (!globalThis.navigator) globalThis.navigator = { onLine: true };
freshBrowser();
