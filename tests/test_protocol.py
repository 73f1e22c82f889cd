"""Unit tests for whiteboard.protocol: the wire contract, without Django or sockets."""

from __future__ import annotations

import ast
import contextlib
import json
import math
import sys
from pathlib import Path

import pytest

from whiteboard import protocol as p
from whiteboard.protocol import frames

LIMITS = p.Limits()
CID = "cid-0001-abcdef"
COORD = 1_000_000
PAIR_RULE = "must be a pair [x, y] of numbers from -1,000,000 to 1,000,000"

BASE_STYLE = {"color": "#1a2B3c", "width": 2}
ELEMENTS = {
    "stroke": {"points": [[0, 0], [1.5, -2]]},
    "line": {"points": [[0, 0], [10, 10]]},
    "arrow": {"points": [[0, 0], [5, 0], [5, 5]]},
    "rect": {"w": 10, "h": -20},
    "ellipse": {"w": -3.5, "h": 4},
    "text": {"text": "hello", "size": 16},
    # version 1.1: a note's fill is required, and it has no width
    "note": {"w": 240, "h": 160, "text": "buy milk", "size": 18, "fill": "#FFF59d"},
    # version 1.1: an image names an upload and has only an opacity for style
    "image": {"asset": "A" * 16 + "_-z9", "w": 320, "h": -180},
}
NOTE_STYLE = {"color": "#1a2B3c"}
KIND_STYLES = {"note": NOTE_STYLE, "image": {}}


def element(kind: str = "rect", **fields) -> dict:
    data = {"id": "el-1", "kind": kind, "x": 1, "y": 2.5}
    data.update(ELEMENTS[kind])
    data.update(KIND_STYLES.get(kind, BASE_STYLE))
    data.update(fields)
    return data


def frame(**data) -> str:
    return json.dumps(data)


def parse(data: dict):
    """Both phases, as the consumer runs them."""
    return p.validate(p.parse_envelope(json.dumps(data)), LIMITS)


def add(el: dict | None = None, **extra):
    return parse({"type": "add", "cid": CID, "element": el or element(), **extra})


def refused(data: dict, error=p.BadMessage) -> p.ProtocolError:
    with pytest.raises(error) as info:
        parse(data)
    return info.value


def refused_element(el, *, draft: bool = False) -> str:
    with pytest.raises(p.BadMessage) as info:
        p.validate_element(el, LIMITS, draft=draft)
    return info.value.message


def without(data: dict, key: str) -> dict:
    return {k: v for k, v in data.items() if k != key}


# --- Interface and constants ------------------------------------------------------


def test_protocol_version_is_one():
    assert p.PROTOCOL_VERSION == 1


def test_client_types_are_ops_plus_volatile_messages():
    ops = {"add", "update", "delete", "clear", "undo", "redo"}
    assert ops == p.OP_TYPES
    assert ops | {"cursor", "draft", "ping", "viewport"} == p.CLIENT_TYPES


def test_every_kind_has_its_own_fields():
    assert set(p.KIND_FIELDS) == set(p.KINDS)
    assert p.KIND_FIELDS["stroke"] == ("points",)
    assert p.KIND_FIELDS["rect"] == ("w", "h")
    assert p.KIND_FIELDS["text"] == ("text", "size")
    assert p.KIND_FIELDS["note"] == ("w", "h", "text", "size")
    assert p.KIND_FIELDS["image"] == ("asset", "w", "h")


def test_every_kind_has_its_style_fields_and_a_note_has_no_width():
    assert set(p.KIND_STYLE) == set(p.KINDS)
    own = {"note": ("color", "fill", "opacity"), "image": ("opacity",)}
    for kind in p.KINDS:
        assert p.KIND_STYLE[kind] == own.get(kind, p.STYLE_FIELDS)


def test_features_list_the_version_1_1_additions_epoch_first():
    assert p.FEATURES == ("epoch", "follow", "image", "note", "viewport")
    assert json.loads(frames.welcome(board={}, you={}, users=[], seq=0, limits=LIMITS))[
        "features"
    ] == ["epoch", "follow", "image", "note", "viewport"]


def test_close_codes_match_the_contract():
    codes = (
        p.CLOSE_LOGIN_REQUIRED,
        p.CLOSE_FORBIDDEN,
        p.CLOSE_NOT_FOUND,
        p.CLOSE_IDLE,
        p.CLOSE_POLICY,
        p.CLOSE_TOO_BIG,
        p.CLOSE_INTERNAL,
        p.CLOSE_RESTART,
    )
    assert codes == (4401, 4403, 4404, 4408, 1008, 1009, 1011, 1012)


def test_protocol_package_imports_only_the_standard_library_and_orjson():
    package = Path(p.__file__).parent
    imported = set()
    for module in package.glob("*.py"):
        tree = ast.parse(module.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                imported.add((node.module or "").split(".")[0])
    assert imported
    assert imported <= set(sys.stdlib_module_names) | {"__future__", "orjson"}


@pytest.mark.parametrize("pattern", [p.ID_RE, p.CID_RE])
def test_id_patterns_refuse_a_trailing_newline(pattern):
    assert pattern.fullmatch("abcdefgh")
    assert not pattern.fullmatch("abcdefgh\n")


def test_limits_as_dict_holds_the_defaults_as_ints():
    limits = p.Limits().as_dict()
    assert limits == {
        "max_frame_bytes": 262144,
        "max_points": 5000,
        "max_elements": 50000,
        "ops_per_second": 50,
        "heartbeat_seconds": 20,
        "max_board_bytes": 50 * 1024 * 1024,
        "max_asset_bytes": 10 * 1024 * 1024,
        "max_asset_pixels": 40_000_000,
    }
    assert all(type(value) is int for value in limits.values())


def test_limits_as_dict_reflects_custom_limits():
    assert p.Limits(max_points=10).as_dict()["max_points"] == 10


@pytest.mark.parametrize("value", [0, -1, 1.5, "5", True, None])
def test_limits_refuse_values_that_are_not_positive_ints(value):
    with pytest.raises(ValueError, match="max_points"):
        p.Limits(max_points=value)


# --- Errors -------------------------------------------------------------------------


ERROR_CODES = [
    (p.ProtocolError, "bad_message"),
    (p.BadJson, "bad_json"),
    (p.BadMessage, "bad_message"),
    (p.UnknownType, "unknown_type"),
    (p.Forbidden, "forbidden"),
    (p.NotFound, "not_found"),
    (p.Exists, "exists"),
    (p.BoardFull, "board_full"),
    (p.RateLimited, "rate_limited"),
    (p.NothingToUndo, "nothing_to_undo"),
    (p.NothingToRedo, "nothing_to_redo"),
]


@pytest.mark.parametrize(("error", "code"), ERROR_CODES)
def test_each_error_class_has_its_machine_code(error, code):
    assert error.code == code
    assert issubclass(error, p.ProtocolError)


@pytest.mark.parametrize(("error", "code"), ERROR_CODES)
def test_error_frame_echoes_the_cid_when_given(error, code):
    exc = error("what went wrong", cid=CID)
    assert exc.message == "what went wrong"
    assert exc.cid == CID
    assert str(exc) == "what went wrong"
    assert json.loads(frames.error(exc)) == {
        "type": "error",
        "code": code,
        "message": "what went wrong",
        "cid": CID,
    }


def test_error_frame_has_no_cid_key_without_a_cid():
    assert json.loads(frames.error(p.NotFound("no such element"))) == {
        "type": "error",
        "code": "not_found",
        "message": "no such element",
    }


def test_error_frame_function_shapes():
    assert json.loads(frames.error_frame("exists", "taken")) == {
        "type": "error",
        "code": "exists",
        "message": "taken",
    }
    assert json.loads(frames.error_frame("exists", "taken", CID))["cid"] == CID


# --- Phase 1: bad_json ----------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "",
        "not json",
        "{",
        '{"type": "ping",}',
        "{'type': 'ping'}",
        '{"type": "ping"} trailing',
    ],
)
def test_text_that_is_not_json_is_bad_json(text):
    with pytest.raises(p.BadJson) as info:
        p.parse_envelope(text)
    assert info.value.code == "bad_json"
    assert info.value.cid is None


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_bad_json(constant):
    text = '{"type": "cursor", "x": CONSTANT, "y": 0}'.replace("CONSTANT", constant)
    with pytest.raises(p.BadJson, match="finite"):
        p.parse_envelope(text)


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("[]", "array"),
        ('[{"type": "ping"}]', "array"),
        ('"x"', "string"),
        ("3", "number"),
        ("1.5", "number"),
        ("true", "boolean"),
        ("null", "null"),
    ],
)
def test_json_that_is_not_an_object_is_bad_json(text, named):
    with pytest.raises(p.BadJson, match=named):
        p.parse_envelope(text)


def test_deeply_nested_json_is_bad_json_not_a_crash():
    text = '{"type": "ping", "a": ' + "[" * 200_000 + "]" * 200_000 + "}"
    with pytest.raises(p.BadJson):
        p.parse_envelope(text)


def test_unpaired_surrogate_escape_is_bad_json():
    text = '{"type": "add", "cid": "CID", "element": {"text": "\\ud800"}}'
    text = text.replace("CID", CID)
    with pytest.raises(p.BadJson, match="surrogate") as info:
        p.parse_envelope(text)
    assert info.value.cid == CID


def test_unpaired_surrogate_in_the_cid_is_not_echoed():
    text = '{"type": "add", "cid": "abcdefgh\\udc00"}'
    with pytest.raises(p.BadJson) as info:
        p.parse_envelope(text)
    assert info.value.cid is None


def test_escaped_surrogate_pair_and_unicode_are_accepted():
    text = '{"type": "ping", "s": "\\ud83d\\ude00 caf\\u00e9"}'
    assert p.parse_envelope(text).data["s"] == "\U0001f600 café"


# --- Phase 1: type and cid ------------------------------------------------------------


def test_missing_type_is_bad_message():
    with pytest.raises(p.BadMessage, match="type is required") as info:
        p.parse_envelope(frame(cid=CID))
    assert info.value.cid == CID


@pytest.mark.parametrize("value", [None, 1, 1.5, True, [], {}, ["add"]])
def test_non_string_type_is_bad_message(value):
    with pytest.raises(p.BadMessage, match="type must be a string"):
        p.parse_envelope(frame(type=value))


@pytest.mark.parametrize(
    "value",
    [
        "welcome",
        "snapshot",
        "ops",
        "ack",
        "error",
        "pong",
        "cursors",
        "joined",
        "left",
        "board",
        "bye",
        "",
        "ADD",
        "Add",
        " add",
        "add ",
        "add\n",
        "websocket.disconnect",
        "board_op",
        "__init__",
    ],
)
def test_types_a_client_may_not_send_are_unknown_type(value):
    with pytest.raises(p.UnknownType) as info:
        p.parse_envelope(frame(type=value, cid=CID))
    assert info.value.code == "unknown_type"
    assert info.value.cid == CID


def test_every_server_only_type_is_unknown_type():
    for server_type in p.SERVER_TYPES - p.CLIENT_TYPES:
        with pytest.raises(p.UnknownType):
            p.parse_envelope(frame(type=server_type))


def test_unknown_type_message_lists_the_client_types():
    with pytest.raises(p.UnknownType, match="add, update, delete"):
        p.parse_envelope(frame(type="welcome"))


def test_type_is_checked_before_cid():
    with pytest.raises(p.UnknownType):
        p.parse_envelope(frame(type="nope", cid=1))


@pytest.mark.parametrize("op_type", sorted(p.OP_TYPES))
def test_op_without_cid_is_bad_message(op_type):
    with pytest.raises(p.BadMessage, match="cid must be") as info:
        p.parse_envelope(frame(type=op_type))
    assert info.value.cid is None


@pytest.mark.parametrize(
    "cid",
    [
        "a" * 7,
        "a" * 65,
        "",
        "abcdefg!",
        "abcd efgh",
        "abcdefgh\n",
        "abcdéfgh",
        "abcdefgh.",
    ],
)
def test_op_with_malformed_string_cid_is_bad_message_echoing_it(cid):
    with pytest.raises(p.BadMessage, match="cid must be") as info:
        p.parse_envelope(frame(type="add", cid=cid))
    assert info.value.cid == cid


@pytest.mark.parametrize("cid", [None, 12345678, 1.5, True, ["abcdefgh"], {}])
def test_op_with_non_string_cid_is_bad_message_without_echo(cid):
    with pytest.raises(p.BadMessage, match="cid must be") as info:
        p.parse_envelope(frame(type="undo", cid=cid))
    assert info.value.cid is None


@pytest.mark.parametrize("cid", ["a" * 8, "A" * 64, "0123-4567_89", CID])
def test_op_with_valid_cid_gives_an_envelope(cid):
    env = p.parse_envelope(frame(type="clear", cid=cid))
    assert env == p.Envelope("clear", cid, {"type": "clear", "cid": cid})


@pytest.mark.parametrize("msg_type", ["cursor", "draft", "ping", "viewport"])
def test_volatile_envelope_has_no_cid_even_when_one_is_sent(msg_type):
    env = p.parse_envelope(frame(type=msg_type, cid="x"))
    assert env.type == msg_type
    assert env.cid is None


def test_envelope_keeps_the_decoded_object():
    env = p.parse_envelope(frame(type="ping", n=1))
    assert env.data == {"type": "ping", "n": 1}


# --- Phase 2: top-level keys ------------------------------------------------------


VALID_MESSAGES = {
    "add": {"type": "add", "cid": CID, "element": element()},
    "update": {"type": "update", "cid": CID, "id": "el-1", "set": {"x": 5}},
    "delete": {"type": "delete", "cid": CID, "ids": ["el-1"]},
    "clear": {"type": "clear", "cid": CID},
    "undo": {"type": "undo", "cid": CID},
    "redo": {"type": "redo", "cid": CID},
    "cursor": {"type": "cursor", "x": 1, "y": 2},
    "draft": {"type": "draft", "element": None},
    "viewport": {"type": "viewport", "x": 1, "y": 2, "w": 3, "h": 4},
}
REQUIRED_KEYS = [
    (name, key)
    for name, message in VALID_MESSAGES.items()
    for key in message
    if key not in ("type", "cid")
]


@pytest.mark.parametrize(("msg_type", "key"), REQUIRED_KEYS)
def test_missing_top_level_field_is_bad_message_naming_it(msg_type, key):
    error = refused(without(VALID_MESSAGES[msg_type], key))
    assert f"missing field '{key}'" in error.message


@pytest.mark.parametrize("msg_type", sorted(VALID_MESSAGES))
def test_extra_top_level_field_is_bad_message_naming_it(msg_type):
    error = refused({**VALID_MESSAGES[msg_type], "extra": 1})
    assert "unknown field 'extra'" in error.message
    assert "allowed: type" in error.message


@pytest.mark.parametrize("msg_type", ["cursor", "draft", "viewport"])
def test_cid_is_an_extra_field_on_cursor_and_draft(msg_type):
    error = refused({**VALID_MESSAGES[msg_type], "cid": CID})
    assert "unknown field 'cid'" in error.message
    assert error.cid == CID, "a refused frame's cid is echoed whenever it had one"


@pytest.mark.parametrize("msg_type", sorted(p.OP_TYPES))
def test_field_errors_in_ops_echo_the_cid(msg_type):
    assert refused({**VALID_MESSAGES[msg_type], "extra": 1}).cid == CID


def test_validate_refuses_an_envelope_of_a_type_it_does_not_know():
    with pytest.raises(p.UnknownType):
        p.validate(p.Envelope("welcome", None, {"type": "welcome"}), LIMITS)


# --- add: valid elements ------------------------------------------------------------


@pytest.mark.parametrize("kind", p.KINDS)
def test_add_of_every_kind_normalizes_the_element(kind):
    op = add(element(kind))
    assert op == p.AddOp(CID, op.element)
    style = {"note": ["color", "fill", "opacity"], "image": ["opacity"]}
    assert list(op.element) == ["id", "kind", "x", "y", *p.KIND_FIELDS[kind]] + (
        style.get(kind, ["color", "width", "fill", "opacity"])
    )
    assert op.element.get("fill") == ELEMENTS[kind].get("fill")
    assert op.element["opacity"] == 1
    for name, value in ELEMENTS[kind].items():
        assert op.element[name] == value


def test_add_keeps_given_fill_opacity_and_color_case():
    op = add(element("rect", fill="#ABCdef", opacity=0.5, color="#FFFFFF"))
    assert op.element["fill"] == "#ABCdef"
    assert op.element["opacity"] == 0.5
    assert op.element["color"] == "#FFFFFF"


def test_add_accepts_explicit_null_fill():
    assert add(element("rect", fill=None)).element["fill"] is None


def test_add_drops_client_v_and_by():
    op = add(element("text", v=99, by="mallory"))
    assert {"v", "by"}.isdisjoint(op.element)


def test_add_ignores_v_and_by_of_any_type():
    op = add(element("line", v=[1, {"x": None}], by=None))
    assert {"v", "by"}.isdisjoint(op.element)


def test_normalized_element_encodes_to_compact_json():
    el = add(element("rect")).element
    assert p.encode(el) == (
        '{"id":"el-1","kind":"rect","x":1,"y":2.5,"w":10,"h":-20,'
        '"color":"#1a2B3c","width":2,"fill":null,"opacity":1}'
    )


def test_validate_element_does_not_change_its_input():
    data = element("rect", v=3)
    snapshot = json.loads(json.dumps(data))
    p.validate_element(data, LIMITS)
    assert data == snapshot


def test_validate_element_errors_carry_no_cid():
    with pytest.raises(p.BadMessage) as info:
        p.validate_element(element(width=0), LIMITS)
    assert info.value.cid is None


@pytest.mark.parametrize("element_id", ["a", "A" * 64, "x_Y-0", "0"])
def test_element_ids_of_1_to_64_safe_characters_are_accepted(element_id):
    assert add(element(id=element_id)).element["id"] == element_id


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("x", -COORD),
        ("x", COORD),
        ("y", -COORD),
        ("y", 1e6),
        ("w", -COORD),
        ("h", COORD),
        ("width", 1),
        ("width", 64),
        ("width", 0.5 + 0.5),
        ("width", 63.99),
        ("opacity", 0.05),
        ("opacity", 1),
        ("opacity", 1.0),
        ("color", "#000000"),
        ("color", "#abcdef"),
        ("color", "#ABCDEF"),
        ("fill", "#a1B2c3"),
    ],
)
def test_boundary_values_are_accepted(field, value):
    assert add(element("rect", **{field: value})).element[field] == value


@pytest.mark.parametrize(
    ("field", "value"),
    [("size", 1), ("size", 1000), ("size", 12.5), ("text", "x"), ("text", "é" * 2000)],
)
def test_text_boundaries_are_accepted(field, value):
    assert add(element("text", **{field: value})).element[field] == value


def test_text_may_hold_any_characters_including_newlines():
    text = "line one\nline two\t😀"
    assert add(element("text", text=text)).element["text"] == text


@pytest.mark.parametrize("kind", ["stroke", "line", "arrow"])
def test_points_from_two_to_max_points_pairs_are_accepted(kind):
    for count in (2, LIMITS.max_points):
        points = [[i, -i] for i in range(count)]
        assert add(element(kind, points=points)).element["points"] == points


def test_points_at_the_coordinate_limits_are_accepted():
    points = [[-COORD, COORD], [COORD, -COORD], [0.25, -0.5]]
    assert add(element("stroke", points=points)).element["points"] == points


def test_max_points_follows_the_limits():
    limits = p.Limits(max_points=3)
    points = [[0, 0]] * 4
    with pytest.raises(p.BadMessage, match="2 to 3"):
        p.validate_element(element("line", points=points), limits)
    assert p.validate_element(element("line", points=points[:3]), limits)


# --- add: refused elements ----------------------------------------------------------


def test_element_that_is_not_an_object_is_refused():
    for value in (None, [], "rect", 1):
        assert "element must be an object" in refused_element(value)


@pytest.mark.parametrize(
    "element_id", ["", "a" * 65, "a b", "a/b", "a.b", "é", "a\n", 5, None, True, ["a"]]
)
def test_bad_element_id_is_refused(element_id):
    message = refused_element(element(id=element_id))
    assert message.startswith("element.id must be a string of 1 to 64")


def test_missing_element_id_is_refused():
    assert "element.id must be" in refused_element(without(element(), "id"))


@pytest.mark.parametrize("kind", [None, "circle", "Rect", "", 1, ["rect"], {}])
def test_unknown_kind_is_refused_listing_the_kinds(kind):
    message = refused_element({**element(), "kind": kind})
    assert message == (
        "element.kind must be one of: "
        "stroke, line, arrow, rect, ellipse, text, note, image"
    )


def test_missing_kind_is_refused():
    assert "element.kind must be one of" in refused_element(without(element(), "kind"))


COORD_FIELDS = ["x", "y"]
NUMBER_FIELD_RANGES = {
    "x": (-COORD, COORD),
    "y": (-COORD, COORD),
    "w": (-COORD, COORD),
    "h": (-COORD, COORD),
    "width": (1, 64),
    "opacity": (0.05, 1),
    "size": (1, 1000),
}
KIND_OF_FIELD = {"w": "rect", "h": "ellipse", "size": "text"}
OUT_OF_RANGE = [
    (name, value)
    for name, (lo, hi) in NUMBER_FIELD_RANGES.items()
    for value in (lo - 1, hi + 1, lo - 0.001, hi + 0.001)
]
NOT_NUMBERS = [
    (name, value)
    for name in NUMBER_FIELD_RANGES
    for value in (True, False, None, "1", [1], {"v": 1}, 1e400, -1e400)
]


@pytest.mark.parametrize(("field", "value"), OUT_OF_RANGE + NOT_NUMBERS)
def test_number_fields_refuse_out_of_range_and_non_numbers(field, value):
    el = element(KIND_OF_FIELD.get(field, "rect"), **{field: value})
    message = refused_element(el)
    lo, hi = NUMBER_FIELD_RANGES[field]
    assert message == f"element.{field} must be a number from {lo:,} to {hi:,}"


def test_width_message_says_what_is_allowed():
    assert refused_element(element(width=65)) == (
        "element.width must be a number from 1 to 64"
    )


def test_nan_that_reaches_validation_is_refused():
    assert "element.x must be" in refused_element(element(x=math.nan))


@pytest.mark.parametrize("field", ["x", "y", "color", "width"])
def test_missing_required_field_is_refused_naming_it(field):
    message = refused_element(without(element("rect"), field))
    assert message.startswith(f"element.{field} is required and must be ")


@pytest.mark.parametrize(
    ("kind", "field"),
    [(kind, field) for kind in p.KINDS for field in p.KIND_FIELDS[kind]],
)
def test_missing_kind_field_is_refused_naming_it(kind, field):
    message = refused_element(without(element(kind), field))
    assert message.startswith(f"element.{field} is required")


def test_missing_points_message_states_the_point_counts():
    message = refused_element(without(element("stroke"), "points"))
    assert message == (
        "element.points is required and must be a list of 2 to 5,000 [x, y] pairs"
    )
    draft_message = refused_element(without(element("stroke"), "points"), draft=True)
    assert "a list of 1 to 5,000" in draft_message


@pytest.mark.parametrize(
    "color",
    [
        "#12345",
        "#1234567",
        "123456",
        "#12345g",
        "#fff",
        "red",
        "",
        "#123456\n",
        " #123456",
        None,
        0x123456,
        ["#123456"],
    ],
)
def test_bad_color_is_refused(color):
    assert refused_element(element(color=color)) == (
        "element.color must be a color string #rrggbb"
    )


@pytest.mark.parametrize("fill", ["#12345", "transparent", "", 0, False, "#abcdeg"])
def test_bad_fill_is_refused(fill):
    assert refused_element(element(fill=fill)) == (
        "element.fill must be a color string #rrggbb or null"
    )


@pytest.mark.parametrize("text", ["", "x" * 2001, None, 5, ["a"]])
def test_bad_text_is_refused(text):
    assert refused_element(element("text", text=text)) == (
        "element.text must be a string of 1 to 2,000 characters"
    )


@pytest.mark.parametrize("kind", ["stroke", "line", "arrow"])
@pytest.mark.parametrize(
    "points",
    [[], [[0, 0]], [[0, 0]] * 5001, None, "0,0 1,1", {"0": [0, 0]}, 5],
)
def test_bad_point_lists_are_refused(kind, points):
    assert refused_element(element(kind, points=points)) == (
        "element.points must be a list of 2 to 5,000 [x, y] pairs"
    )


@pytest.mark.parametrize(
    "pair",
    [
        [0],
        [0, 0, 0],
        [],
        (0, 0),
        {"x": 0, "y": 0},
        "00",
        None,
        5,
        [True, 0],
        [0, False],
        [None, 0],
        ["1", 0],
        [0, [1]],
        [COORD + 1, 0],
        [0, -COORD - 1],
        [0, COORD + 0.5],
        [1e400, 0],
        [0, math.nan],
    ],
)
def test_bad_point_pair_is_refused_naming_its_index(pair):
    message = refused_element(element("stroke", points=[[0, 0], [1, 1], pair]))
    assert message == f"element.points[2] {PAIR_RULE}"


@pytest.mark.parametrize(
    ("kind", "field", "value"),
    [
        ("rect", "points", [[0, 0], [1, 1]]),
        ("ellipse", "text", "hi"),
        ("ellipse", "size", 12),
        ("text", "w", 10),
        ("text", "h", 10),
        ("text", "points", [[0, 0], [1, 1]]),
        ("stroke", "w", 1),
        ("line", "size", 12),
        ("arrow", "text", "hi"),
    ],
)
def test_another_kinds_field_is_refused(kind, field, value):
    message = refused_element(element(kind, **{field: value}))
    own = ", ".join(p.KIND_FIELDS[kind])
    assert message == (
        f"element.{field} belongs to another kind; {kind} elements take {own}"
    )


@pytest.mark.parametrize("field", ["z", "radius", "seq", "sid", "ID", "Kind", ""])
def test_unknown_element_field_is_refused_listing_the_allowed(field):
    message = refused_element(element("rect", **{field: 1}))
    assert message == (
        f"element has unknown field {field!r}; allowed: "
        "id, kind, x, y, w, h, color, width, fill, opacity"
    )


def test_very_long_unknown_field_name_is_cut_short_in_the_message():
    message = refused_element(element("rect", **{"q" * 10_000: 1}))
    assert len(message) < 200


def test_add_with_one_point_is_refused_but_a_draft_with_one_is_accepted():
    one = element("stroke", points=[[3, 4]])
    error = refused({"type": "add", "cid": CID, "element": one})
    assert error.message == "element.points must be a list of 2 to 5,000 [x, y] pairs"
    draft = parse({"type": "draft", "element": one})
    assert draft.element["points"] == [[3, 4]]


def test_add_errors_echo_the_cid():
    error = refused({"type": "add", "cid": CID, "element": element(width=0)})
    assert error.cid == CID
    assert json.loads(frames.error(error))["cid"] == CID


# --- update -------------------------------------------------------------------------


def update(changes, element_id="el-1", **extra):
    data = {"type": "update", "cid": CID, "id": element_id, "set": changes}
    return parse({**data, **extra})


@pytest.mark.parametrize(
    "changes",
    [
        {"x": 5},
        {"x": -COORD, "y": COORD},
        {"points": [[0, 0], [1, 1]]},
        {"w": -5, "h": 6.5},
        {"text": "new", "size": 1000},
        {"color": "#ABCDEF"},
        {"width": 64},
        {"fill": None},
        {"fill": "#000000"},
        {"opacity": 0.05},
        {"x": 1, "y": 2, "color": "#000000", "width": 3, "fill": None, "opacity": 1},
    ],
)
def test_valid_update_is_kept_as_sent(changes):
    assert update(changes) == p.UpdateOp(CID, "el-1", changes)


def test_update_set_may_mix_kinds_until_checked_for_the_element():
    op = update({"points": [[0, 0], [1, 1]], "w": 3})
    assert op.set == {"points": [[0, 0], [1, 1]], "w": 3}


@pytest.mark.parametrize("changes", [{}, None, [], "x", [["x", 1]], 5])
def test_update_set_must_be_a_non_empty_object(changes):
    error = refused({"type": "update", "cid": CID, "id": "el-1", "set": changes})
    assert error.message == "set must be a non-empty object of fields to change"
    assert error.cid == CID


@pytest.mark.parametrize("field", ["id", "kind", "v", "by"])
def test_update_may_not_change_server_or_identity_fields(field):
    error = refused({"type": "update", "cid": CID, "id": "el-1", "set": {field: "x"}})
    assert error.message.startswith(f"set.{field} cannot be changed; settable: x, y")


@pytest.mark.parametrize("field", ["z", "radius", "fills", "X"])
def test_update_refuses_unknown_fields(field):
    error = refused({"type": "update", "cid": CID, "id": "el-1", "set": {field: 1}})
    assert error.message.startswith(f"set has unknown field {field!r}; allowed:")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"x": COORD + 1}, "set.x must be a number from -1,000,000 to 1,000,000"),
        ({"y": True}, "set.y must be a number from -1,000,000 to 1,000,000"),
        ({"width": 0}, "set.width must be a number from 1 to 64"),
        ({"opacity": 0.04}, "set.opacity must be a number from 0.05 to 1"),
        ({"size": 1001}, "set.size must be a number from 1 to 1,000"),
        ({"color": None}, "set.color must be a color string #rrggbb"),
        ({"fill": "#fff"}, "set.fill must be a color string #rrggbb or null"),
        # 0 to: a note's text may be empty (check_update_for_kind refuses a text's)
        ({"text": "x" * 2001}, "set.text must be a string of 0 to 2,000 characters"),
        ({"text": None}, "set.text must be a string of 0 to 2,000 characters"),
        ({"points": [[0, 0]]}, "set.points must be a list of 2 to 5,000 [x, y] pairs"),
        (
            {"points": [[0, 0], [0, "1"]]},
            f"set.points[1] {PAIR_RULE}",
        ),
    ],
)
def test_update_validates_each_field_as_add_does(changes, message):
    error = refused({"type": "update", "cid": CID, "id": "el-1", "set": changes})
    assert error.message == message
    assert error.cid == CID


@pytest.mark.parametrize("element_id", ["", "a" * 65, "a b", None, 3, ["a"]])
def test_update_refuses_a_bad_element_id(element_id):
    error = refused({"type": "update", "cid": CID, "id": element_id, "set": {"x": 1}})
    assert error.message.startswith("id must be a string of 1 to 64")


# --- check_update_for_kind ----------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "changes"),
    [
        ("stroke", {"points": [], "x": 1, "color": "#000000"}),
        ("rect", {"w": 1, "h": 2, "fill": None}),
        ("ellipse", {"w": 1}),
        ("text", {"text": "a", "size": 3, "opacity": 1}),
        ("arrow", {"y": 2, "width": 3}),
    ],
)
def test_check_update_for_kind_accepts_own_and_shared_fields(kind, changes):
    assert p.check_update_for_kind(kind, changes) is None


@pytest.mark.parametrize(
    ("kind", "field"),
    [
        (kind, field)
        for kind in p.KINDS
        for field in ("points", "w", "h", "text", "size")
        if field not in p.KIND_FIELDS[kind]
    ],
)
def test_check_update_for_kind_refuses_another_kinds_field(kind, field):
    with pytest.raises(p.BadMessage) as info:
        p.check_update_for_kind(kind, {"x": 1, field: 1}, CID)
    own = ", ".join(p.KIND_FIELDS[kind])
    assert info.value.message == (
        f"set.{field} belongs to another kind; {kind} elements take {own}"
    )
    assert info.value.cid == CID


def test_check_update_for_kind_errors_carry_no_cid_by_default():
    with pytest.raises(p.BadMessage) as info:
        p.check_update_for_kind("rect", {"points": []})
    assert info.value.cid is None


# --- note (version 1.1) -------------------------------------------------------------


def note(**fields) -> dict:
    return element("note", **fields)


def test_valid_note_is_normalized_without_width():
    op = add(note())
    assert op.element == {
        "id": "el-1",
        "kind": "note",
        "x": 1,
        "y": 2.5,
        "w": 240,
        "h": 160,
        "text": "buy milk",
        "size": 18,
        "color": "#1a2B3c",
        "fill": "#FFF59d",
        "opacity": 1,
    }
    assert p.encode(op.element) == (
        '{"id":"el-1","kind":"note","x":1,"y":2.5,"w":240,"h":160,'
        '"text":"buy milk","size":18,"color":"#1a2B3c","fill":"#FFF59d","opacity":1}'
    )


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("w", 20),
        ("w", 2000),
        ("h", 20),
        ("h", 2000.0),
        ("w", 20.5),
        ("text", ""),
        ("text", "x"),
        ("text", "é" * 2000),
        ("text", "😀" * 2000),
        ("text", "line one\nline two"),
        ("size", 1),
        ("size", 1000),
        ("fill", "#000000"),
        ("color", "#ABCDEF"),
        ("opacity", 0.05),
        ("x", -COORD),
        ("y", COORD),
    ],
)
def test_note_boundary_values_are_accepted(field, value):
    assert add(note(**{field: value})).element[field] == value


def test_note_may_have_empty_text():
    assert add(note(text="")).element["text"] == ""


@pytest.mark.parametrize(
    ("field", "value", "rule"),
    [
        ("w", 19.999, "a number from 20 to 2,000"),
        ("w", 0, "a number from 20 to 2,000"),
        ("w", -240, "a number from 20 to 2,000"),
        ("w", 2000.5, "a number from 20 to 2,000"),
        ("h", 2001, "a number from 20 to 2,000"),
        ("h", 19, "a number from 20 to 2,000"),
        ("h", True, "a number from 20 to 2,000"),
        ("w", "240", "a number from 20 to 2,000"),
        ("text", "x" * 2001, "a string of 0 to 2,000 characters"),
        ("text", None, "a string of 0 to 2,000 characters"),
        ("text", 5, "a string of 0 to 2,000 characters"),
        ("size", 0, "a number from 1 to 1,000"),
        ("size", 1000.5, "a number from 1 to 1,000"),
        ("fill", None, "a color string #rrggbb"),
        ("fill", "#fff", "a color string #rrggbb"),
        ("fill", "yellow", "a color string #rrggbb"),
        ("color", None, "a color string #rrggbb"),
        ("opacity", 0.04, "a number from 0.05 to 1"),
        ("opacity", 1.01, "a number from 0.05 to 1"),
    ],
)
def test_note_field_out_of_bounds_is_refused(field, value, rule):
    assert refused_element(note(**{field: value})) == f"element.{field} must be {rule}"


@pytest.mark.parametrize("width", [1, 2, None])
def test_note_with_a_width_is_refused(width):
    assert refused_element(note(width=width)) == (
        "element.width is not a field of note elements; "
        "their style is color, fill, opacity"
    )


@pytest.mark.parametrize(
    ("field", "rule"),
    [
        ("w", "a number from 20 to 2,000"),
        ("h", "a number from 20 to 2,000"),
        ("text", "a string of 0 to 2,000 characters"),
        ("size", "a number from 1 to 1,000"),
        ("fill", "a color string #rrggbb"),
        ("color", "a color string #rrggbb"),
    ],
)
def test_note_without_a_required_field_is_refused(field, rule):
    message = refused_element(without(note(), field))
    assert message == f"element.{field} is required and must be {rule}"


def test_note_without_opacity_gets_the_default():
    assert add(without(note(), "opacity")).element["opacity"] == 1


def test_note_with_points_is_refused_as_another_kinds_field():
    assert refused_element(note(points=[[0, 0], [1, 1]])) == (
        "element.points belongs to another kind; note elements take w, h, text, size"
    )


def test_text_element_still_needs_text():
    assert refused_element(element("text", text="")) == (
        "element.text must be a string of 1 to 2,000 characters"
    )


@pytest.mark.parametrize("kind", ["rect", "ellipse"])
def test_rect_and_ellipse_keep_their_own_bounds_for_w_and_h(kind):
    op = add(element(kind, w=-COORD, h=5))
    assert (op.element["w"], op.element["h"]) == (-COORD, 5)


def test_note_draft_is_validated_like_an_add():
    assert parse({"type": "draft", "element": note(text="")}).element == (
        add(note(text="")).element
    )
    error = refused({"type": "draft", "element": note(w=10)})
    assert error.message == "element.w must be a number from 20 to 2,000"
    error = refused({"type": "draft", "element": note(width=2)})
    assert error.message.startswith("element.width is not a field of note elements")


@pytest.mark.parametrize(
    "changes",
    [
        {"text": ""},
        {"text": "x" * 2000},
        {"size": 1},
        {"w": 20, "h": 2000},
        {"x": -5, "y": 7, "color": "#000000", "fill": "#ffffff", "opacity": 0.5},
        {"text": "done", "size": 30, "w": 300, "h": 300},
    ],
)
def test_update_of_a_notes_own_fields_is_accepted(changes):
    op = update(changes)
    assert op == p.UpdateOp(CID, "el-1", changes)
    assert p.check_update_for_kind("note", op.set, CID) is None


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"w": 19}, "set.w must be a number from 20 to 2,000"),
        ({"h": 2001}, "set.h must be a number from 20 to 2,000"),
        ({"w": -240}, "set.w must be a number from 20 to 2,000"),
        ({"x": 1, "fill": None}, "set.fill must be a color string #rrggbb"),
        (
            {"width": 2},
            "set.width is not a field of note elements; "
            "their style is color, fill, opacity",
        ),
        (
            {"points": [[0, 0], [1, 1]]},
            "set.points belongs to another kind; note elements take w, h, text, size",
        ),
    ],
)
def test_update_of_a_note_is_checked_by_the_notes_rules(changes, message):
    op = update(changes)  # the element's kind is not known yet: accepted here
    with pytest.raises(p.BadMessage) as info:
        p.check_update_for_kind("note", op.set, CID)
    assert info.value.message == message
    assert info.value.cid == CID


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"size": 0}, "set.size must be a number from 1 to 1,000"),
        ({"text": "x" * 2001}, "set.text must be a string of 0 to 2,000 characters"),
        ({"fill": "#12345"}, "set.fill must be a color string #rrggbb or null"),
        ({"h": COORD + 1}, "set.h must be a number from -1,000,000 to 1,000,000"),
    ],
)
def test_update_refuses_at_once_a_value_no_kind_takes(changes, message):
    error = refused({"type": "update", "cid": CID, "id": "n1", "set": changes})
    assert error.message == message


@pytest.mark.parametrize(
    ("kind", "field", "value"),
    [
        ("rect", "text", "hi"),
        ("rect", "size", 12),
        ("ellipse", "text", ""),
        ("stroke", "text", "a"),
        ("line", "w", 100),
    ],
)
def test_a_notes_field_in_an_update_of_another_kind_is_refused(kind, field, value):
    op = update({field: value})
    with pytest.raises(p.BadMessage) as info:
        p.check_update_for_kind(kind, op.set, CID)
    own = ", ".join(p.KIND_FIELDS[kind])
    assert info.value.message == (
        f"set.{field} belongs to another kind; {kind} elements take {own}"
    )


def test_update_of_a_text_elements_text_may_not_be_empty():
    op = update({"text": ""})  # a note's may: the kind decides
    with pytest.raises(p.BadMessage) as info:
        p.check_update_for_kind("text", op.set, CID)
    assert info.value.message == "set.text must be a string of 1 to 2,000 characters"


@pytest.mark.parametrize(
    ("kind", "changes"),
    [("rect", {"w": 5, "h": -3, "fill": None, "width": 2}), ("ellipse", {"w": 1})],
)
def test_update_of_a_rect_keeps_the_rects_rules(kind, changes):
    assert p.check_update_for_kind(kind, update(changes).set) is None


# --- delete, clear, undo, redo ------------------------------------------------------


def test_delete_keeps_order_and_drops_duplicates():
    op = parse({"type": "delete", "cid": CID, "ids": ["b", "a", "b", "c", "a"]})
    assert op == p.DeleteOp(CID, ("b", "a", "c"))


def test_delete_accepts_max_elements_ids():
    limits = p.Limits(max_elements=3)
    env = p.parse_envelope(frame(type="delete", cid=CID, ids=["a", "b", "c"]))
    assert p.validate(env, limits).ids == ("a", "b", "c")


def test_delete_refuses_more_than_max_elements_ids():
    limits = p.Limits(max_elements=3)
    env = p.parse_envelope(frame(type="delete", cid=CID, ids=["a", "b", "c", "d"]))
    with pytest.raises(p.BadMessage, match="ids must be a list of 1 to 3 element ids"):
        p.validate(env, limits)


@pytest.mark.parametrize("ids", [[], None, "a", {"a": 1}, 5])
def test_delete_ids_must_be_a_non_empty_list(ids):
    error = refused({"type": "delete", "cid": CID, "ids": ids})
    assert error.message == "ids must be a list of 1 to 50,000 element ids"
    assert error.cid == CID


@pytest.mark.parametrize("bad", ["", "a" * 65, "a b", 1, None, ["a"], True])
def test_delete_refuses_a_bad_id_naming_its_index(bad):
    error = refused({"type": "delete", "cid": CID, "ids": ["ok", bad]})
    assert error.message.startswith("ids[1] must be a string of 1 to 64")


@pytest.mark.parametrize(
    ("msg_type", "op_class"),
    [("clear", p.ClearOp), ("undo", p.UndoOp), ("redo", p.RedoOp)],
)
def test_clear_undo_redo_carry_only_their_cid(msg_type, op_class):
    assert parse({"type": msg_type, "cid": CID}) == op_class(CID)


# --- cursor -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("x", "y"), [(0, 0), (-COORD, COORD), (1.25, -3.5), (COORD, -COORD)]
)
def test_valid_cursor(x, y):
    assert parse({"type": "cursor", "x": x, "y": y}) == p.Cursor(x, y)


@pytest.mark.parametrize(
    ("x", "y", "field"),
    [
        (COORD + 1, 0, "x"),
        (0, -COORD - 1, "y"),
        (True, 0, "x"),
        (0, None, "y"),
        ("1", 0, "x"),
        (0, [0], "y"),
    ],
)
def test_bad_cursor_is_refused_naming_the_field(x, y, field):
    error = refused({"type": "cursor", "x": x, "y": y})
    assert error.message == f"{field} must be a number from -1,000,000 to 1,000,000"
    assert error.cid is None


def test_cursor_number_that_overflows_to_infinity_is_refused():
    env = p.parse_envelope('{"type": "cursor", "x": 1e400, "y": 0}')
    with pytest.raises(p.BadMessage, match="x must be a number"):
        p.validate(env, LIMITS)


def test_element_number_that_overflows_to_infinity_is_refused():
    text = json.dumps({"type": "add", "cid": CID, "element": element(w=12345)})
    env = p.parse_envelope(text.replace("12345", "-1e400"))
    with pytest.raises(p.BadMessage, match=r"element\.w must be a number"):
        p.validate(env, LIMITS)


# --- viewport (version 1.1) ---------------------------------------------------------


@pytest.mark.parametrize(
    ("x", "y", "w", "h"),
    [
        (0, 0, 1, 1),
        (-COORD, COORD, COORD, COORD),
        (1.5, -2.25, 0.001, 5e-324),
        (10, 20, 1920, 1080),
    ],
)
def test_valid_viewport(x, y, w, h):
    message = parse({"type": "viewport", "x": x, "y": y, "w": w, "h": h})
    assert message == p.Viewport(x, y, w, h)


SIDE_RULE = "must be a number greater than 0, at most 1,000,000"
COORD_RULE = "must be a number from -1,000,000 to 1,000,000"


@pytest.mark.parametrize(
    ("field", "value", "rule"),
    [
        ("w", 0, SIDE_RULE),
        ("w", -0.0, SIDE_RULE),
        ("h", -1, SIDE_RULE),
        ("w", COORD + 1, SIDE_RULE),
        ("h", True, SIDE_RULE),
        ("w", "100", SIDE_RULE),
        ("h", None, SIDE_RULE),
        ("w", [1], SIDE_RULE),
        ("x", COORD + 1, COORD_RULE),
        ("y", False, COORD_RULE),
        ("x", "0", COORD_RULE),
    ],
)
def test_bad_viewport_is_refused_naming_the_field(field, value, rule):
    frame = {"type": "viewport", "x": 1, "y": 2, "w": 3, "h": 4, field: value}
    error = refused(frame)
    assert error.message == f"{field} {rule}"
    assert error.cid is None


def test_viewport_number_that_overflows_to_infinity_is_refused():
    env = p.parse_envelope('{"type": "viewport", "x": 0, "y": 0, "w": 1e400, "h": 1}')
    with pytest.raises(p.BadMessage, match="w must be a number"):
        p.validate(env, LIMITS)


def test_viewport_fields_are_exact():
    error = refused({"type": "viewport", "x": 1, "y": 2, "w": 3, "h": 4, "zoom": 2})
    assert error.message == (
        "viewport message has unknown field 'zoom'; allowed: type, x, y, w, h, follows"
    )
    error = refused({"type": "viewport", "x": 1, "y": 2, "w": 3})
    assert error.message == "viewport message is missing field 'h'"


def test_viewport_is_listed_among_the_client_types():
    with pytest.raises(p.UnknownType, match="ping, viewport"):
        p.parse_envelope(frame(type="viewports"))


def test_viewports_frame_holds_the_encoded_items():
    items = [frames.viewport_item("s1", 1, -2.5, 300, 200)]
    assert json.loads(frames.viewports(items)) == {
        "type": "viewports",
        "viewports": [{"sid": "s1", "x": 1, "y": -2.5, "w": 300, "h": 200}],
    }
    assert "viewports" in p.SERVER_TYPES


# --- draft --------------------------------------------------------------------------


def test_draft_null_withdraws_the_draft():
    assert parse({"type": "draft", "element": None}) == p.Draft(None)


@pytest.mark.parametrize("kind", p.KINDS)
def test_draft_element_is_normalized_like_an_add(kind):
    draft = parse({"type": "draft", "element": element(kind, v=1, by="me")})
    assert draft.element == add(element(kind)).element


def test_draft_element_is_validated_like_an_add():
    error = refused({"type": "draft", "element": element("text", w=1)})
    assert error.message == (
        "element.w belongs to another kind; text elements take text, size"
    )


@pytest.mark.parametrize("value", [[], "x", 0, False])
def test_draft_element_must_be_an_object_or_null(value):
    assert refused({"type": "draft", "element": value}).message == (
        "element must be an object"
    )


def test_draft_with_no_points_is_refused():
    error = refused({"type": "draft", "element": element("stroke", points=[])})
    assert error.message == "element.points must be a list of 1 to 5,000 [x, y] pairs"


def test_validate_element_draft_flag_allows_one_point():
    one = element("arrow", points=[[0, 0]])
    assert p.validate_element(one, LIMITS, draft=True)["points"] == [[0, 0]]
    with pytest.raises(p.BadMessage):
        p.validate_element(one, LIMITS)


# --- ping and pong ------------------------------------------------------------------


def test_bare_ping_gets_a_bare_pong():
    ping = parse({"type": "ping"})
    assert ping == p.Ping({})
    assert json.loads(frames.pong(ping)) == {"type": "pong"}


def test_ping_extras_are_echoed_in_the_pong():
    extras = {"t": 123.5, "id": "abc", "nested": {"a": [1, None, True]}, "cid": 5}
    ping = parse({"type": "ping", **extras})
    assert ping.extra == extras
    assert json.loads(frames.pong(ping)) == {"type": "pong", **extras}


def test_ping_extra_with_an_overflowing_number_is_refused():
    env = p.parse_envelope('{"type": "ping", "t": 1e999}')
    with pytest.raises(p.BadMessage, match="finite"):
        p.validate(env, LIMITS)


# --- encode -------------------------------------------------------------------------


def test_encode_is_compact_and_keeps_unicode():
    assert p.encode({"type": "pong", "s": "café 😀", "n": [1, 2.5]}) == (
        '{"type":"pong","s":"café 😀","n":[1,2.5]}'
    )


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_encode_refuses_non_finite_numbers(value):
    with pytest.raises(ValueError, match="JSON compliant"):
        p.encode({"type": "pong", "n": value})


def test_error_frame_round_trips_through_encode():
    text = frames.error(p.BadMessage("x must be a number", CID))
    assert json.loads(text) == {
        "type": "error",
        "code": "bad_message",
        "message": "x must be a number",
        "cid": CID,
    }


# --- the whole path -----------------------------------------------------------------


def test_every_error_a_parse_raises_has_a_json_encodable_frame():
    texts = [
        "nope",
        "[]",
        frame(cid=CID),
        frame(type="welcome", cid=CID),
        frame(type="add", cid="short"),
        frame(type="add", cid=CID, element=element(width=99)),
    ]
    for text in texts:
        with pytest.raises(p.ProtocolError) as info:
            p.validate(p.parse_envelope(text), LIMITS)
        encoded = json.loads(frames.error(info.value))
        assert encoded["type"] == "error"
        assert encoded["code"] == info.value.code
        assert encoded["message"]


# --- found by the fuzzer (tests/test_fuzz.py) -----------------------------------------


def nested(depth: int, inner: str = "1") -> str:
    return "[" * depth + inner + "]" * depth


def decodable_depths():
    """Nesting depths up to the recursion limit: the deepest ones that still
    decode lie wherever the caller's stack leaves the decoder its limit."""
    return range(sys.getrecursionlimit() - 200, sys.getrecursionlimit() + 1)


def parsed_or_refused(text: str) -> None:
    """Both phases end in a message or a ProtocolError; nothing else escapes."""
    with contextlib.suppress(p.ProtocolError):
        p.validate(p.parse_envelope(text), LIMITS)


def test_unicode_escape_in_a_frame_nested_to_the_decoders_limit_is_no_crash():
    # The surrogate check re-encoded the frame with json.dumps, a few stack
    # frames deeper than the decoder: RecursionError, 1011 and a traceback.
    for depth in decodable_depths():
        escaped = '"s": "\\u0041"'
        parsed_or_refused(f'{{"type": "ping", {escaped}, "a": {nested(depth)}}}')
        add = f'{{"type": "add", "cid": "{CID}", {escaped}, "e": {nested(depth)}}}'
        parsed_or_refused(add)


def test_surrogate_deep_inside_a_frame_is_still_found():
    text = '{"type": "ping", "a": ' + nested(50, '{"\\udfff": 1}') + "}"
    with pytest.raises(p.BadJson, match="surrogate"):
        p.parse_envelope(text)


def test_ping_nested_to_the_decoders_limit_is_refused_not_a_crash():
    # A ping that decoded at the edge of the recursion limit crashed the
    # server where its pong was encoded (RecursionError, then 1011).
    for depth in decodable_depths():
        parsed_or_refused('{"type": "ping", "a": ' + nested(depth) + "}")


def test_ping_extras_may_nest_64_levels_and_are_echoed():
    ping = parse({"type": "ping", "a": json.loads(nested(63))})
    assert json.loads(frames.pong(ping))["a"] == json.loads(nested(63))


def test_ping_extras_nested_deeper_than_64_levels_are_bad_message():
    env = p.parse_envelope('{"type": "ping", "cid": "x", "a": ' + nested(64) + "}")
    with pytest.raises(p.BadMessage, match="64 levels") as info:
        p.validate(env, LIMITS)
    assert info.value.cid == "x"


def test_joined_and_left_frames_are_encoded_once_per_event_and_always_right():
    user = {"sid": "s1", "name": "Ann", "color": "#123456"}
    first = frames.joined(user)
    assert json.loads(first) == {"type": "joined", "user": user}
    assert frames.joined(dict(user)) is first  # the next receiver: same text
    renamed = frames.joined({**user, "name": "Bea"})
    assert json.loads(renamed)["user"]["name"] == "Bea"
    # A value that cannot be a cache key is encoded all the same.
    odd = {**user, "tags": ["a"]}
    assert json.loads(frames.joined(odd)) == {"type": "joined", "user": odd}
    assert json.loads(frames.left("s1")) == {"type": "left", "sid": "s1"}


# --- image (version 1.1) ------------------------------------------------------------

ASSET = ELEMENTS["image"]["asset"]


def image(**fields) -> dict:
    return element("image", **fields)


def test_valid_image_is_normalized_with_only_an_opacity():
    op = add(image())
    assert op.element == {
        "id": "el-1",
        "kind": "image",
        "x": 1,
        "y": 2.5,
        "asset": ASSET,
        "w": 320,
        "h": -180,
        "opacity": 1,
    }
    assert p.encode(op.element) == (
        f'{{"id":"el-1","kind":"image","x":1,"y":2.5,"asset":"{ASSET}",'
        '"w":320,"h":-180,"opacity":1}'
    )


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("asset", "a" * 16),
        ("asset", "Z" * 64),
        ("asset", "abc-DEF_0123456789"),
        ("w", -COORD),
        ("h", COORD),
        ("w", 0.5),
        ("opacity", 0.05),
        ("opacity", 0.5),
    ],
)
def test_image_boundary_values_are_accepted(field, value):
    assert add(image(**{field: value})).element[field] == value


ASSET_RULE = "an uploaded image's id: 16 to 64 characters from A-Z, a-z, 0-9, _ and -"


@pytest.mark.parametrize(
    ("field", "value", "rule"),
    [
        ("asset", "a" * 15, ASSET_RULE),
        ("asset", "a" * 65, ASSET_RULE),
        ("asset", "a" * 15 + "/", ASSET_RULE),
        ("asset", "../../etc/passwd", ASSET_RULE),
        ("asset", "a" * 16 + "\n", ASSET_RULE),
        ("asset", None, ASSET_RULE),
        ("asset", 1234567890123456, ASSET_RULE),
        ("w", COORD + 1, "a number from -1,000,000 to 1,000,000"),
        ("h", "10", "a number from -1,000,000 to 1,000,000"),
        ("opacity", 0, "a number from 0.05 to 1"),
    ],
)
def test_image_field_out_of_bounds_is_refused(field, value, rule):
    assert refused_element(image(**{field: value})) == f"element.{field} must be {rule}"


@pytest.mark.parametrize(
    ("field", "value"), [("color", "#000000"), ("width", 2), ("fill", None)]
)
def test_image_with_a_stroke_style_is_refused(field, value):
    assert refused_element(image(**{field: value})) == (
        f"element.{field} is not a field of image elements; their style is opacity"
    )


@pytest.mark.parametrize(
    ("field", "rule"),
    [
        ("asset", ASSET_RULE),
        ("w", "a number from -1,000,000 to 1,000,000"),
        ("h", "a number from -1,000,000 to 1,000,000"),
    ],
)
def test_image_without_a_required_field_is_refused(field, rule):
    message = refused_element(without(image(), field))
    assert message == f"element.{field} is required and must be {rule}"


def test_image_with_text_is_refused_as_another_kinds_field():
    assert refused_element(image(text="caption")) == (
        "element.text belongs to another kind; image elements take asset, w, h"
    )


@pytest.mark.parametrize(
    "changes",
    [{"x": 5, "y": -5}, {"w": -640, "h": 360}, {"opacity": 0.3}],
)
def test_update_of_an_images_box_and_opacity_is_accepted(changes):
    op = update(changes)
    assert p.check_update_for_kind("image", op.set, CID) is None


def test_update_may_never_change_an_images_asset():
    error = refused(
        {"type": "update", "cid": CID, "id": "el-1", "set": {"asset": ASSET}}
    )
    assert error.message.startswith("set.asset cannot be changed; settable: x, y")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"color": "#000000"}, "set.color is not a field of image elements"),
        ({"width": 3}, "set.width is not a field of image elements"),
        ({"fill": "#ffffff"}, "set.fill is not a field of image elements"),
        ({"text": "x"}, "set.text belongs to another kind; image elements take"),
        ({"points": [[0, 0], [1, 1]]}, "set.points belongs to another kind"),
    ],
)
def test_update_of_an_image_is_checked_by_the_images_rules(changes, message):
    op = update(changes)
    with pytest.raises(p.BadMessage) as info:
        p.check_update_for_kind("image", op.set, CID)
    assert info.value.message.startswith(message)


def test_an_image_draft_is_validated_like_an_add():
    assert parse({"type": "draft", "element": image()}).element == add(image()).element
    error = refused({"type": "draft", "element": image(asset="short")})
    assert error.message == f"element.asset must be {ASSET_RULE}"
