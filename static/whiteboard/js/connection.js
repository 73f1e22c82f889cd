// The WebSocket to /ws/boards/<slug>/: reconnects with exponential backoff and
// jitter, resumes with ?since=, sends heartbeat pings, and paces ops with the
// same token bucket the server uses (ops_per_second), so a burst of queued ops
// after a reconnect is not refused as rate_limited.

import { CLOSE, DEFAULT_LIMITS, FINAL_CLOSES } from "./constants.js";

const FIRST_DELAY_MS = 500;
const MAX_DELAY_MS = 30000;
// A server that said `bye` (1012) is restarting: the first retry waits 1-2 s
// instead of 0.25-0.5 s, since the old process may still hold its port.
const RESTART_FIRST_ATTEMPT = 2;

export class Connection {
  /**
   * handlers: frame(frame), status(state, text), opened(), closed(code).
   * `since()` gives the last applied seq, or null for a full snapshot.
   */
  constructor(path, handlers, since) {
    this.path = path;
    this.handlers = handlers;
    this.since = since;
    this.ws = null;
    this.attempt = 0;
    this.timers = {};
    this.limits = { ...DEFAULT_LIMITS };
    this.tokens = this.limits.ops_per_second;
    this.refilledAt = performance.now();
    this.stopped = false;
    this.epoch = null;
  }

  url() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const since = this.since();
    // The epoch names the history `since` counts in: a board restored from a
    // backup or replaced by an import has another one, and sends a snapshot.
    const epoch = this.epoch ? `&epoch=${encodeURIComponent(this.epoch)}` : "";
    const query = since === null ? "" : `?since=${since}${epoch}`;
    return `${scheme}//${location.host}${this.path}${query}`;
  }

  open() {
    this.clearTimer("retry");
    this.clearTimer("countdown");
    this.handlers.status(
      this.attempt ? "reconnecting" : "connecting",
      this.attempt ? "Reconnecting…" : "Connecting…",
    );
    const ws = new WebSocket(this.url());
    this.ws = ws;
    ws.onmessage = (event) => this.receive(event);
    ws.onclose = (event) => this.closed(ws, event.code);
    ws.onopen = () => (this.lastHeard = performance.now());
  }

  receive(event) {
    this.lastHeard = performance.now();
    let frame;
    try {
      frame = JSON.parse(event.data);
    } catch {
      console.warn("unreadable frame from the server", event.data);
      return;
    }
    if (frame.type === "welcome") this.welcomed(frame);
    this.handlers.frame(frame);
  }

  welcomed(frame) {
    this.attempt = 0;
    this.epoch = frame.board?.epoch ?? null;
    this.limits = { ...this.limits, ...frame.limits };
    this.tokens = this.limits.ops_per_second;
    this.handlers.status("online", "Connected");
    this.startHeartbeat();
  }

  closed(ws, code) {
    if (ws !== this.ws) return;
    this.ws = null;
    this.stopHeartbeat();
    this.handlers.closed(code);
    if (this.stopped || FINAL_CLOSES.has(code)) {
      this.stopped = true;
      return;
    }
    if (code === CLOSE.RESTART) this.attempt = Math.max(this.attempt, RESTART_FIRST_ATTEMPT);
    this.scheduleRetry();
  }

  /** Exponential backoff with "equal jitter": half fixed, half random. */
  scheduleRetry() {
    const base = Math.min(MAX_DELAY_MS, FIRST_DELAY_MS * 2 ** this.attempt);
    const delay = base / 2 + Math.random() * (base / 2);
    this.attempt += 1;
    const due = performance.now() + delay;
    const tell = () => {
      const left = Math.max(0, Math.ceil((due - performance.now()) / 1000));
      this.handlers.status(
        "reconnecting",
        navigator.onLine === false ? "Offline: waiting for the network…" : `Reconnecting in ${left} s…`,
      );
    };
    tell();
    this.timers.countdown = setInterval(tell, 1000);
    this.timers.retry = setTimeout(() => this.open(), delay);
  }

  /** Reconnect now: after a rename, or when the browser is back online. */
  reconnect() {
    if (this.stopped) return;
    this.attempt = 0;
    if (this.ws) this.ws.close(CLOSE.NORMAL, "reconnect");
    else this.open();
  }

  /** Give up on a socket that went silent without waiting for its close. */
  drop() {
    const ws = this.ws;
    this.closed(ws, CLOSE.ABNORMAL);
    ws.close();
  }

  get isOpen() {
    return this.ws !== null && this.ws.readyState === WebSocket.OPEN;
  }

  /** Send a frame now if the socket is open; false if it could not go. */
  send(frame) {
    if (!this.isOpen) return false;
    this.ws.send(JSON.stringify(frame));
    return true;
  }

  /** Take one op token; false when the bucket is empty (retry later). */
  takeToken() {
    const now = performance.now();
    const rate = this.limits.ops_per_second;
    this.tokens = Math.min(rate, this.tokens + ((now - this.refilledAt) / 1000) * rate);
    this.refilledAt = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }

  /** Milliseconds until the next token. */
  tokenWait() {
    return Math.ceil(((1 - this.tokens) / this.limits.ops_per_second) * 1000) + 5;
  }

  frameFits(frame) {
    return new TextEncoder().encode(JSON.stringify(frame)).length <= this.limits.max_frame_bytes;
  }

  /** A ping every heartbeat; a silent server (no frame for 2.5 beats) is dropped. */
  startHeartbeat() {
    this.stopHeartbeat();
    const beat = this.limits.heartbeat_seconds * 1000;
    this.timers.heartbeat = setInterval(() => {
      if (performance.now() - this.lastHeard > beat * 2.5 && this.ws) {
        this.drop();
        return;
      }
      this.send({ type: "ping", t: Date.now() });
    }, beat);
  }

  stopHeartbeat() {
    this.clearTimer("heartbeat");
  }

  clearTimer(name) {
    clearTimeout(this.timers[name]);
    clearInterval(this.timers[name]);
    delete this.timers[name];
  }
}
