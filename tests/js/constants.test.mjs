// constants.js holds the page's copy of what the server defines in
// whiteboard/protocol/messages.py (the close codes and the default limits) and
// validation.py (bounds of fields). These tests read the Python files, so the
// two sides cannot drift apart unnoticed.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import {
  CLOSE,
  COORD_LIMIT,
  DEFAULT_LIMITS,
  FINAL_CLOSES,
  NOTE_SIDE_MAX,
  NOTE_SIDE_MIN,
  TEXT_MAX_CHARS,
} from "../../static/whiteboard/js/constants.js";

const python = (name) => readFileSync(new URL(`../../whiteboard/protocol/${name}`, import.meta.url), "utf8");
const messages = python("messages.py");
const validation = python("validation.py");

/** `NAME = 1234` lines of the module whose name starts with `prefix`. */
function pythonConstants(prefix) {
  const found = {};
  for (const [, name, value] of messages.matchAll(new RegExp(`^${prefix}([A-Z_]+) = (\\d+)`, "gm"))) {
    found[name] = Number(value);
  }
  return found;
}

/** The integer defaults of the Limits dataclass, e.g. `max_points: int = 5000` or `50 * 1024 * 1024`. */
function pythonLimits() {
  const body = messages.slice(messages.indexOf("class Limits"));
  const found = {};
  for (const [, name, expr] of body.matchAll(/^ {4}([a-z_]+): int = ([\d_ *]+)$/gm)) {
    found[name] = expr
      .replaceAll("_", "")
      .split("*")
      .reduce((product, factor) => product * Number(factor), 1);
  }
  return found;
}

test("every close code of the server has the same number and name here", () => {
  const server = pythonConstants("CLOSE_");
  assert.ok(Object.keys(server).length >= 10, "the server's close codes were found");
  for (const [name, code] of Object.entries(server)) assert.equal(CLOSE[name], code, `CLOSE.${name}`);
});

test("the page gives up exactly on the 44xx codes the server does not retry", () => {
  const retryable = messages.match(/RETRYABLE_CLOSES = frozenset\(\s*\{([^}]*)\}/)[1];
  const retried = new Set([...retryable.matchAll(/CLOSE_([A-Z_]+)/g)].map(([, name]) => CLOSE[name]));
  const final = Object.values(CLOSE).filter((code) => code >= 4000 && !retried.has(code));
  assert.deepEqual([...FINAL_CLOSES].sort(), final.sort());
});

test("the default limits are the server's", () => {
  const server = pythonLimits();
  assert.ok(server.max_points > 0 && server.ops_per_second > 0, "the server's limits were found");
  assert.deepEqual({ ...DEFAULT_LIMITS }, server);
});

test("the bounds of element fields are the server's", () => {
  const bounds = {};
  for (const [, names, values] of validation.matchAll(/^([A-Z_, ]+) = ([\d_, ]+)$/gm)) {
    const numbers = values.split(",").map((v) => Number(v.trim().replaceAll("_", "")));
    names.split(",").forEach((name, i) => {
      bounds[name.trim()] = numbers[i];
    });
  }
  const page = { COORD_LIMIT, TEXT_MAX_CHARS, NOTE_SIDE_MIN, NOTE_SIDE_MAX };
  for (const [name, value] of Object.entries(page)) {
    assert.equal(typeof bounds[name], "number", `${name} found in validation.py`);
    assert.equal(value, bounds[name], name);
  }
});

test("the constants cannot be changed by a module that imports them", () => {
  assert.throws(() => {
    CLOSE.RESTART = 1;
  }, TypeError);
  assert.equal(Object.isFrozen(DEFAULT_LIMITS), true);
});
