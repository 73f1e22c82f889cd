// Values more than one module needs, defined once: the WebSocket close codes of
// PROTOCOL.md, the limits the page assumes until `welcome` states the server's,
// and the names of what the pages keep in localStorage.

/** The close codes of PROTOCOL.md, named as whiteboard/protocol/messages.py names them (CLOSE_*). */
export const CLOSE = Object.freeze({
  NORMAL: 1000, // the page itself closed the socket (to reconnect)
  ABNORMAL: 1006, // dropped without a close frame, or gone silent
  POLICY: 1008, // too many refused frames in a minute
  TOO_BIG: 1009, // a frame over max_frame_bytes
  INTERNAL: 1011, // an unexpected server error
  RESTART: 1012, // the server said `bye`: it is restarting
  TRY_AGAIN: 1013, // the server cannot serve the board right now
  LOGIN_REQUIRED: 4401,
  FORBIDDEN: 4403,
  NOT_FOUND: 4404,
  IDLE: 4408, // no data frame for 3 heartbeats
  SLOW_READER: 4413, // the page did not read what the server sent
  TOO_MANY_CONNECTIONS: 4429,
});

/** After these the page does not reconnect: access is refused or the board is gone. */
export const FINAL_CLOSES = new Set([CLOSE.LOGIN_REQUIRED, CLOSE.FORBIDDEN, CLOSE.NOT_FOUND]);

/** The server's default limits (whiteboard/protocol/messages.py), used until `welcome` says them. */
export const DEFAULT_LIMITS = Object.freeze({
  max_frame_bytes: 262144,
  max_points: 5000,
  max_elements: 50000,
  ops_per_second: 50,
  heartbeat_seconds: 20,
  max_board_bytes: 50 * 1024 * 1024,
  max_asset_bytes: 10 * 1024 * 1024,
  max_asset_pixels: 40_000_000,
});

// Bounds of element fields (whiteboard/protocol/validation.py, same names).
/** Every coordinate stays within +-COORD_LIMIT. */
export const COORD_LIMIT = 1_000_000;
/** The most characters a text or a note holds. */
export const TEXT_MAX_CHARS = 2000;
/** A note's width and height lie in [NOTE_SIDE_MIN, NOTE_SIDE_MAX]. */
export const NOTE_SIDE_MIN = 20;
export const NOTE_SIDE_MAX = 2000;

/** localStorage: a board's unsent ops live under this prefix plus the board's slug. */
export const PENDING_KEY_PREFIX = "whiteboard.pending.";
/** localStorage: the "recently visited" boards the home page lists. */
export const RECENT_KEY = "whiteboard.recent";
/** The document event logout.js sends before clearing localStorage (store.js stops writing). */
export const LOGOUT_EVENT = "whiteboard:logout";
