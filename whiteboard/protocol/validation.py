"""Validation of client frames, in the protocol's check order.

A client frame is read in two phases: parse_envelope() decodes it and checks
`type` and `cid` cheaply, so that duplicates and rate limits are answered
before validate() pays for checking every field. No Django; JSON is read
with orjson, and with the standard decoder wherever the two could differ.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from .messages import (
    ADD,
    CLEAR,
    CLIENT_TYPES,
    CURSOR,
    DELETE,
    DRAFT,
    OP_TYPES,
    PING,
    REDO,
    UNDO,
    UPDATE,
    VIEWPORT,
    AddOp,
    BadJson,
    BadMessage,
    ClearOp,
    Cursor,
    DeleteOp,
    Draft,
    Envelope,
    Limits,
    Message,
    Ping,
    ProtocolError,
    RedoOp,
    UndoOp,
    UnknownType,
    UpdateOp,
    Viewport,
)

KINDS = ("stroke", "line", "arrow", "rect", "ellipse", "text", "note", "image")
STYLE_FIELDS = ("color", "width", "fill", "opacity")
KIND_FIELDS: dict[str, tuple[str, ...]] = {
    "stroke": ("points",),
    "line": ("points",),
    "arrow": ("points",),
    "rect": ("w", "h"),
    "ellipse": ("w", "h"),
    "text": ("text", "size"),
    "note": ("w", "h", "text", "size"),  # version 1.1
    "image": ("asset", "w", "h"),  # version 1.1
}
# The style fields of each kind: a note has no `width`, an image only its
# opacity (PROTOCOL.md 1.1, "Notes" and "Images").
KIND_STYLE: dict[str, tuple[str, ...]] = {
    **dict.fromkeys(KIND_FIELDS, STYLE_FIELDS),
    "note": ("color", "fill", "opacity"),
    "image": ("opacity",),
}

# Always use .fullmatch(): `$` would also match before a trailing newline.
ID_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
CID_RE = re.compile(r"[A-Za-z0-9_-]{8,64}")
COLOR_RE = re.compile(r"#[0-9A-Fa-f]{6}")
# An uploaded image's id (whiteboard/assets.py makes them).
ASSET_RE = re.compile(r"[A-Za-z0-9_-]{16,64}")

COORD_LIMIT = 1_000_000
WIDTH_MIN, WIDTH_MAX = 1, 64
OPACITY_MIN, OPACITY_MAX = 0.05, 1
SIZE_MIN, SIZE_MAX = 1, 1000
TEXT_MAX_CHARS = 2000
NOTE_SIDE_MIN, NOTE_SIDE_MAX = 20, 2000
MIN_POINTS, MIN_DRAFT_POINTS = 2, 1
# The extras object of a ping counts as level 1.
PING_MAX_DEPTH = 64

_CLIENT_TYPE_ORDER = (
    ADD,
    UPDATE,
    DELETE,
    CLEAR,
    UNDO,
    REDO,
    CURSOR,
    DRAFT,
    PING,
    VIEWPORT,
)
_TYPE_LIST = ", ".join(_CLIENT_TYPE_ORDER)
_CID_RULE = "a string of 8 to 64 characters from A-Z, a-z, 0-9, _ and -"
_ID_RULE = "a string of 1 to 64 characters from A-Z, a-z, 0-9, _ and -"


def _show(value: Any, limit: int = 40) -> str:
    """A client-supplied value for an error message, cut short."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON; numbers must be finite")


def _json_kind(value: Any) -> str:
    names = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(value), "a number")


def _is_unicode(text: str) -> bool:
    """False if a \\u escape left a lone surrogate, which no UTF-8 frame can carry."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


# Built once: json.loads() with any keyword builds a new decoder on every call.
_DECODER = json.JSONDecoder(parse_constant=_reject_constant)

# The standard decoder defines how a frame is read and which error answers it;
# orjson reads a frame several times faster (bench/json_choices.py) and the same
# way, except for these, which the standard decoder reads as it always has:
# - text orjson refuses: the client is answered with the standard decoder's
#   message (and 1e999 and lone surrogate escapes, which orjson refuses, are
#   read and then refused by the checks below, with their own messages);
# - a ping, whose numbers the pong echoes: orjson reads an integer beyond 64
#   bits as a float (any other frame's numbers are only compared with ranges
#   that a float so large fails as the integer does, and never shown);
# - nesting deeper than 254 levels: orjson reads up to 1,024, the standard
#   decoder as deep as the stack leaves it room for (about 1,000).
_SHALLOW = 254  # orjson.dumps writes this many levels, refuses one more
_UNSURE = object()


def _decode(text: str) -> dict:
    data = _read_fast(text)
    unsure = data is _UNSURE
    if unsure:  # read here, as it always was: the stack leaves it the same room
        try:
            data = _DECODER.decode(text)
        except (ValueError, RecursionError) as exc:  # JSONDecodeError: a ValueError
            raise BadJson(f"frame is not valid JSON: {exc}") from None
    if type(data) is not dict:
        kind = _json_kind(data)
        raise BadJson(f'frame must be a JSON object like {{"type": ...}}, not {kind}')
    if unsure and "\\u" in text:  # only an escape can produce a lone surrogate
        _check_unicode(data)
    return data


def _read_fast(text: str) -> Any:
    """orjson's reading of `text`, or _UNSURE where the standard decoder's
    might differ. A string orjson reads holds no lone surrogate."""
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError:
        return _UNSURE
    if type(data) is dict and data.get("type") == PING:
        return _UNSURE
    if len(text) > 2 * _SHALLOW and text.count("[") + text.count("{") > _SHALLOW:
        try:  # fewer openers than that cannot nest deeper
            orjson.dumps(data)
        except orjson.JSONEncodeError:
            return _UNSURE
    return data


def _strings(data: dict) -> Iterator[str]:
    """Every key and string value in `data`, however deep, without recursion:
    a frame nested as deep as the decoder allows must not overflow the stack
    here, a few frames further down (json.dumps would)."""
    stack: list[Any] = [data]
    while stack:
        node = stack.pop()
        if type(node) is dict:
            yield from node
            stack.extend(node.values())
        elif type(node) is list:
            stack.extend(node)
        elif type(node) is str:
            yield node


def _check_unicode(data: dict) -> None:
    if all(map(_is_unicode, _strings(data))):
        return
    cid = data.get("cid")
    cid = cid if type(cid) is str and _is_unicode(cid) else None
    raise BadJson("frame has an unpaired UTF-16 surrogate escape (\\ud800)", cid)


def _check_type(data: dict, echo: str | None) -> str:
    msg_type = data.get("type")
    if type(msg_type) is not str:
        rule = "is required" if "type" not in data else "must be a string"
        raise BadMessage(f"type {rule}; one of: {_TYPE_LIST}", echo)
    if msg_type not in CLIENT_TYPES:
        text = f"type {_show(msg_type)} is not sent by clients; one of: {_TYPE_LIST}"
        raise UnknownType(text, echo)
    return msg_type


def parse_envelope(text: str) -> Envelope:
    """Phase 1: decode a text frame and check `type`, then `cid` for ops."""
    data = _decode(text)
    cid = data.get("cid")
    echo = cid if type(cid) is str else None
    msg_type = _check_type(data, echo)
    if msg_type not in OP_TYPES:
        return Envelope(msg_type, None, data)
    if echo is None or not CID_RE.fullmatch(echo):
        raise BadMessage(f"cid must be {_CID_RULE}", echo)
    return Envelope(msg_type, echo, data)


# --- Phase 2: field validation --------------------------------------------------------

_REQUIRED = object()
_NUMBER_TYPES = (int, float)  # checked with type(): a bool is never a number here


@dataclass(frozen=True)
class _Field:
    """One element field: `check(value, allowed_point_counts)` gives an error tail
    (" must be ...") or None; `rule` may name {lo} and {hi}, the point counts."""

    check: Callable[[Any, range], str | None]
    rule: str
    default: Any = _REQUIRED


def _number_field(lo: float, hi: float, default: Any = _REQUIRED) -> _Field:
    rule = f"a number from {lo:,} to {hi:,}"
    tail = f" must be {rule}"

    def check(value: Any, _counts: range) -> str | None:
        ok = type(value) in _NUMBER_TYPES and lo <= value <= hi  # NaN/inf fail too
        return None if ok else tail

    return _Field(check, rule, default)


_COORD = _number_field(-COORD_LIMIT, COORD_LIMIT)
_POINTS_RULE = "a list of {lo:,} to {hi:,} [x, y] pairs"
_PAIR_TAIL = f" must be a pair [x, y] of {_COORD.rule.replace('a number', 'numbers')}"
_COLOR_RULE = "a color string #rrggbb"
_TEXT_RULE = f"a string of 1 to {TEXT_MAX_CHARS:,} characters"
_ANY_TEXT_RULE = f"a string of 0 to {TEXT_MAX_CHARS:,} characters"
_SIDE_RULE = f"a number greater than 0, at most {COORD_LIMIT:,}"
_ASSET_RULE = "an uploaded image's id: 16 to 64 characters from A-Z, a-z, 0-9, _ and -"


def _check_points(value: Any, counts: range) -> str | None:
    if type(value) is not list or len(value) not in counts:
        return " must be " + _POINTS_RULE.format(lo=counts.start, hi=counts.stop - 1)
    lo, hi = -COORD_LIMIT, COORD_LIMIT
    # The hottest loop of the server (up to max_points pairs per frame): checks are
    # inlined, and the failing index is only looked up once a pair has failed.
    for pair in value:
        if type(pair) is not list or len(pair) != 2:
            break
        x, y = pair
        if not (
            (type(x) is float or type(x) is int)
            and (type(y) is float or type(y) is int)
            and lo <= x <= hi
            and lo <= y <= hi
        ):
            break
    else:
        return None
    index = next(i for i, item in enumerate(value) if item is pair)
    return f"[{index}]{_PAIR_TAIL}"


def _check_color(value: Any, _counts: range) -> str | None:
    ok = type(value) is str and COLOR_RE.fullmatch(value) is not None
    return None if ok else f" must be {_COLOR_RULE}"


def _check_fill(value: Any, _counts: range) -> str | None:
    ok = value is None or (type(value) is str and COLOR_RE.fullmatch(value))
    return None if ok else f" must be {_COLOR_RULE} or null"


def _check_text(value: Any, _counts: range) -> str | None:
    ok = type(value) is str and 1 <= len(value) <= TEXT_MAX_CHARS
    return None if ok else f" must be {_TEXT_RULE}"


def _check_any_text(value: Any, _counts: range) -> str | None:
    ok = type(value) is str and len(value) <= TEXT_MAX_CHARS
    return None if ok else f" must be {_ANY_TEXT_RULE}"


def _check_asset(value: Any, _counts: range) -> str | None:
    ok = type(value) is str and ASSET_RE.fullmatch(value) is not None
    return None if ok else f" must be {_ASSET_RULE}"


def _check_side(value: Any, _counts: range) -> str | None:
    ok = type(value) in _NUMBER_TYPES and 0 < value <= COORD_LIMIT
    return None if ok else f" must be {_SIDE_RULE}"


# Each field's rule wherever the element's kind is not known (an update's `set`,
# checked before its element is read): the loosest of the kinds' rules. A kind
# whose own rule is narrower names it in _KIND_RULES.
_FIELDS: dict[str, _Field] = {
    "x": _COORD,
    "y": _COORD,
    "points": _Field(_check_points, _POINTS_RULE),
    "w": _COORD,
    "h": _COORD,
    "text": _Field(_check_any_text, _ANY_TEXT_RULE),
    "asset": _Field(_check_asset, _ASSET_RULE),
    "size": _number_field(SIZE_MIN, SIZE_MAX),
    "color": _Field(_check_color, _COLOR_RULE),
    "width": _number_field(WIDTH_MIN, WIDTH_MAX),
    "fill": _Field(_check_fill, f"{_COLOR_RULE} or null", default=None),
    "opacity": _number_field(OPACITY_MIN, OPACITY_MAX, default=1),
}
_NOTE_SIDE = _number_field(NOTE_SIDE_MIN, NOTE_SIDE_MAX)
_KIND_RULES: dict[str, dict[str, _Field]] = {
    "text": {"text": _Field(_check_text, _TEXT_RULE)},
    # A note's text may be empty; its fill is its colour, so it is required.
    "note": {
        "w": _NOTE_SIDE,
        "h": _NOTE_SIDE,
        "fill": _Field(_check_color, _COLOR_RULE),
    },
}
_ALL_KIND_FIELDS = frozenset(name for names in KIND_FIELDS.values() for name in names)
# Normalized element key order after id and kind; also the order fields are checked.
_ELEMENT_ORDER = {k: ("x", "y", *KIND_FIELDS[k], *KIND_STYLE[k]) for k in KINDS}
_ELEMENT_KEYS = {
    k: frozenset({"id", "kind", "v", "by", *_ELEMENT_ORDER[k]}) for k in KINDS
}
# The rule of each field of each kind, in _ELEMENT_ORDER.
_KIND_SPECS: dict[str, dict[str, _Field]] = {
    k: {name: _KIND_RULES.get(k, {}).get(name, _FIELDS[name]) for name in order}
    for k, order in _ELEMENT_ORDER.items()
}
_SETTABLE = ("x", "y", "points", "w", "h", "text", "size", *STYLE_FIELDS)
_SETTABLE_SET = frozenset(_SETTABLE)
_SERVER_OWNED = ("id", "kind", "v", "by")
# Fields an element keeps for life: an image shows one upload (PROTOCOL.md 1.1).
_FIXED = (*_SERVER_OWNED, "asset")


def _checked(name: str, value: Any, path: str, counts: range, cid: str | None) -> Any:
    return _checked_by(_FIELDS[name], value, path, counts, cid)


def _checked_by(
    spec: _Field, value: Any, path: str, counts: range, cid: str | None
) -> Any:
    tail = spec.check(value, counts)
    if tail is not None:
        raise BadMessage(f"{path}{tail}", cid)
    return value


def _check_id(value: Any, path: str, cid: str | None) -> str:
    if type(value) is not str or not ID_RE.fullmatch(value):
        raise BadMessage(f"{path} must be {_ID_RULE}", cid)
    return value


def _check_kind(data: dict, cid: str | None) -> str:
    kind = data.get("kind")
    if type(kind) is not str or kind not in KIND_FIELDS:
        raise BadMessage(f"element.kind must be one of: {', '.join(KINDS)}", cid)
    return kind


def _foreign_field(path: str, name: str, kind: str, cid: str | None) -> BadMessage:
    own = ", ".join(KIND_FIELDS[kind])
    text = f"{path}.{name} belongs to another kind; {kind} elements take {own}"
    return BadMessage(text, cid)


def _foreign_style(path: str, name: str, kind: str, cid: str | None) -> BadMessage:
    style = ", ".join(KIND_STYLE[kind])
    text = f"{path}.{name} is not a field of {kind} elements; their style is {style}"
    return BadMessage(text, cid)


def _reject_unknown(data: dict, kind: str, cid: str | None) -> None:
    allowed = _ELEMENT_KEYS[kind]
    for key in data:
        if key in allowed:
            continue
        if key in _ALL_KIND_FIELDS:
            raise _foreign_field("element", key, kind, cid)
        if key in STYLE_FIELDS:
            raise _foreign_style("element", key, kind, cid)
        names = ", ".join(("id", "kind", *_ELEMENT_ORDER[kind]))
        text = f"element has unknown field {_show(key)}; allowed: {names}"
        raise BadMessage(text, cid)


def _element_field(
    data: dict, name: str, spec: _Field, counts: range, cid: str | None
) -> Any:
    value = data.get(name, _REQUIRED)
    if value is not _REQUIRED:
        return _checked_by(spec, value, f"element.{name}", counts, cid)
    if spec.default is _REQUIRED:
        rule = spec.rule.format(lo=counts.start, hi=counts.stop - 1)
        raise BadMessage(f"element.{name} is required and must be {rule}", cid)
    return spec.default


def _element(data: Any, limits: Limits, draft: bool, cid: str | None) -> dict:
    if type(data) is not dict:
        raise BadMessage("element must be an object", cid)
    element_id = _check_id(data.get("id"), "element.id", cid)
    kind = _check_kind(data, cid)
    _reject_unknown(data, kind, cid)
    counts = range(MIN_DRAFT_POINTS if draft else MIN_POINTS, limits.max_points + 1)
    element = {"id": element_id, "kind": kind}
    for name, spec in _KIND_SPECS[kind].items():
        element[name] = _element_field(data, name, spec, counts, cid)
    return element


def validate_element(data: Any, limits: Limits, *, draft: bool = False) -> dict:
    """Check an element and return it normalized: defaults filled, `v`/`by` dropped,
    keys in wire order. A draft may hold a single point."""
    return _element(data, limits, draft, None)


def check_update_for_kind(kind: str, fields: dict, cid: str | None = None) -> None:
    """Refuse an update's field that the element's kind does not have (another
    kind's field, a note's `width`), or whose value the kind's own rule refuses
    (a note's `w` below 20, its `fill` null, an empty `text` of a text element).
    Only the stored element knows its kind, so validate(), which checks every
    field by the loosest of the kinds' rules, cannot do this."""
    specs = _KIND_SPECS[kind]
    narrower = _KIND_RULES.get(kind, {})
    counts = range(0)  # no kind narrows `points`
    for name, value in fields.items():
        if name not in specs:
            if name in _ALL_KIND_FIELDS:
                raise _foreign_field("set", name, kind, cid)
            if name in STYLE_FIELDS:
                raise _foreign_style("set", name, kind, cid)
        elif name in narrower:
            _checked_by(narrower[name], value, f"set.{name}", counts, cid)


_MESSAGE_KEYS = {
    ADD: ("type", "cid", "element"),
    UPDATE: ("type", "cid", "id", "set"),
    DELETE: ("type", "cid", "ids"),
    CLEAR: ("type", "cid"),
    UNDO: ("type", "cid"),
    REDO: ("type", "cid"),
    CURSOR: ("type", "x", "y"),
    VIEWPORT: ("type", "x", "y", "w", "h"),
    DRAFT: ("type", "element"),
}


# Fields a message may leave out: a viewport's `follows` (this server's
# feature "follow", docs/protocol.md section 12).
_OPTIONAL_KEYS = {VIEWPORT: ("follows",)}


def _check_keys(env: Envelope) -> dict:
    """Top-level fields are exact: every one present (but the optional ones),
    no others."""
    data, keys = env.data, _MESSAGE_KEYS[env.type]
    for key in keys:
        if key not in data:
            raise BadMessage(f"{env.type} message is missing field {key!r}", env.cid)
    if len(data) != len(keys):
        optional = _OPTIONAL_KEYS.get(env.type, ())
        extra = next((k for k in data if k not in keys and k not in optional), None)
        if extra is not None:
            allowed = ", ".join((*keys, *optional))
            text = (
                f"{env.type} message has unknown field {_show(extra)}; "
                f"allowed: {allowed}"
            )
            raise BadMessage(text, env.cid)
    return data


def _op_cid(env: Envelope) -> str:
    """An op's cid, which parse_envelope() has already checked."""
    if env.cid is None:
        raise BadMessage(f"cid must be {_CID_RULE}")
    return env.cid


def _validate_add(env: Envelope, limits: Limits) -> AddOp:
    data = _check_keys(env)
    return AddOp(_op_cid(env), _element(data["element"], limits, False, env.cid))


def _not_settable(name: str, cid: str | None) -> BadMessage:
    allowed = ", ".join(_SETTABLE)
    if name in _FIXED:
        return BadMessage(f"set.{name} cannot be changed; settable: {allowed}", cid)
    return BadMessage(f"set has unknown field {_show(name)}; allowed: {allowed}", cid)


def _check_set(changes: Any, counts: range, cid: str | None) -> dict:
    if type(changes) is not dict or not changes:
        raise BadMessage("set must be a non-empty object of fields to change", cid)
    for name, value in changes.items():
        if name not in _SETTABLE_SET:
            raise _not_settable(name, cid)
        _checked(name, value, f"set.{name}", counts, cid)
    return changes


def _validate_update(env: Envelope, limits: Limits) -> UpdateOp:
    data = _check_keys(env)
    element_id = _check_id(data["id"], "id", env.cid)
    counts = range(MIN_POINTS, limits.max_points + 1)
    return UpdateOp(_op_cid(env), element_id, _check_set(data["set"], counts, env.cid))


def _validate_delete(env: Envelope, limits: Limits) -> DeleteOp:
    ids = _check_keys(env)["ids"]
    if type(ids) is not list or not 1 <= len(ids) <= limits.max_elements:
        rule = f"a list of 1 to {limits.max_elements:,} element ids"
        raise BadMessage(f"ids must be {rule}", env.cid)
    for index, element_id in enumerate(ids):
        _check_id(element_id, f"ids[{index}]", env.cid)
    return DeleteOp(_op_cid(env), tuple(dict.fromkeys(ids)))


_SIMPLE_OPS: dict[str, type[ClearOp] | type[UndoOp] | type[RedoOp]] = {
    CLEAR: ClearOp,
    UNDO: UndoOp,
    REDO: RedoOp,
}


def _validate_simple_op(env: Envelope, limits: Limits) -> ClearOp | UndoOp | RedoOp:
    _check_keys(env)
    return _SIMPLE_OPS[env.type](_op_cid(env))


def _validate_cursor(env: Envelope, limits: Limits) -> Cursor:
    data = _check_keys(env)
    counts = range(0)  # cursors have no points
    return Cursor(
        _checked("x", data["x"], "x", counts, env.cid),
        _checked("y", data["y"], "y", counts, env.cid),
    )


_SIDE = _Field(_check_side, _SIDE_RULE)


def _validate_viewport(env: Envelope, limits: Limits) -> Viewport:
    data = _check_keys(env)
    follows = data.get("follows")  # null, or a sid's shape
    if follows is not None and not (type(follows) is str and ID_RE.fullmatch(follows)):
        raise BadMessage("viewport field 'follows' must be null or a sid", env.cid)
    counts = range(0)  # viewports have no points
    return Viewport(
        _checked("x", data["x"], "x", counts, env.cid),
        _checked("y", data["y"], "y", counts, env.cid),
        _checked_by(_SIDE, data["w"], "w", counts, env.cid),
        _checked_by(_SIDE, data["h"], "h", counts, env.cid),
        follows,
    )


def _validate_draft(env: Envelope, limits: Limits) -> Draft:
    element = _check_keys(env)["element"]
    if element is None:
        return Draft(None)
    return Draft(_element(element, limits, True, env.cid))


def _depth(value: Any) -> int:
    """How deep arrays and objects nest in `value` (0 for a scalar), without
    recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if type(node) is dict:
            node = node.values()
        elif type(node) is not list:
            continue
        deepest = max(deepest, depth)
        stack.extend((item, depth + 1) for item in node)
    return deepest


def _validate_ping(env: Envelope, limits: Limits) -> Ping:
    extra = {key: value for key, value in env.data.items() if key != "type"}
    # The pong is encoded further down the stack than the frame was decoded:
    # extras nested close to the decoder's limit would overflow it there.
    if _depth(extra) > PING_MAX_DEPTH:
        text = f"ping fields may nest at most {PING_MAX_DEPTH} levels deep"
        raise BadMessage(text, env.cid)
    try:  # A number like 1e999 decodes to inf, which no pong could carry.
        json.dumps(extra, allow_nan=False)
    except ValueError:
        raise BadMessage("ping fields must hold finite numbers only", env.cid) from None
    return Ping(extra)


_VALIDATORS: dict[str, Callable[[Envelope, Limits], Message]] = {
    ADD: _validate_add,
    UPDATE: _validate_update,
    DELETE: _validate_delete,
    CLEAR: _validate_simple_op,
    UNDO: _validate_simple_op,
    REDO: _validate_simple_op,
    CURSOR: _validate_cursor,
    VIEWPORT: _validate_viewport,
    DRAFT: _validate_draft,
    PING: _validate_ping,
}


def validate(env: Envelope, limits: Limits) -> Message:
    """Phase 2: check every field of an envelope's message; BadMessage otherwise."""
    validator = _VALIDATORS.get(env.type)
    if validator is None:
        raise UnknownType(f"type {_show(env.type)} is not sent by clients", env.cid)
    try:
        return validator(env, limits)
    except ProtocolError as error:
        # A refused frame's cid is echoed whenever it had one, even on a
        # cursor, viewport, draft or ping, where a cid is itself an unknown field.
        cid = env.data.get("cid")
        if error.cid is None and type(cid) is str:
            error.cid = cid
        raise
