"""orjson reads and writes the frames (issue 11), with the standard library's outcomes.

`whiteboard.protocol` reads client frames with orjson and writes server frames
with it, but the standard library still defines the answers: every frame gets
the error code, message and cid it got when the standard decoder read it, and
every value is written as the standard encoder wrote it. Each place where the
two libraries differ is pinned here by a frame or value that shows it; the
generated frames and values at the end compare the two readings and writings
wholesale.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
import json
import math
import random
import struct
import uuid

import pytest

from tests.fuzzframes import Fuzzer
from tests.fuzzframes import Limits as FuzzLimits
from whiteboard import protocol as p
from whiteboard.protocol import frames, validation

LIMITS = p.Limits()
CID = "cid-0001-abcdef"
STANDARD = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)
_STANDARD_DECODER = json.JSONDecoder(parse_constant=validation._reject_constant)


def standard_decode(text: str) -> dict:
    """How the protocol read a frame before orjson: the standard decoder only."""
    try:
        data = _STANDARD_DECODER.decode(text)
    except (ValueError, RecursionError) as exc:
        raise p.BadJson(f"frame is not valid JSON: {exc}") from None
    if type(data) is not dict:
        kind = validation._json_kind(data)
        raise p.BadJson(f'frame must be a JSON object like {{"type": ...}}, not {kind}')
    if "\\u" in text:
        validation._check_unicode(data)
    return data


def answer(text: str) -> tuple:
    """What the client is sent for `text`: the error (code, message, cid), the
    pong of a ping, or the message the server acts on (its repr, which tells
    an int from a float)."""
    try:
        message = p.validate(p.parse_envelope(text), LIMITS)
    except p.ProtocolError as error:
        return ("error", error.code, error.message, error.cid)
    if isinstance(message, p.Ping):
        return ("pong", frames.pong(message))
    return ("message", repr(message))


def answers(text: str, monkeypatch: pytest.MonkeyPatch) -> tuple[tuple, tuple]:
    """The answer now, and the answer of the standard decoder alone."""
    now = answer(text)
    with monkeypatch.context() as patched:
        patched.setattr(validation, "_decode", standard_decode)
        before = answer(text)
    return now, before


def nested(depth: int, inner: str = "1") -> str:
    return "[" * depth + inner + "]" * depth


# --- Reading: where orjson and the standard decoder differ -------------------------


@pytest.mark.parametrize(
    "text",
    [
        '{"type": "ping",}',  # orjson: "trailing comma is not allowed"
        '{"type": "cursor", "x": 01, "y": 0}',  # "leading zero is not allowed"
        '{"type": "cursor", "x": 1., "y": 0}',
        '{"type": "cursor", "x": .5, "y": 0}',
        '{"type": "cursor", "x": -, "y": 0}',
        '\ufeff{"type": "ping"}',  # a byte order mark
        '{"type": "ping", "s": "a\x01b"}',  # a raw control character
        '{"type": "ping"}\x00',
        '{"type": "ping"}\u00a0',
        "\x0c{}",
        "{'type': 'ping'}",
        '{"type": tru}',
        "",
    ],
)
def test_invalid_json_is_answered_with_the_standard_decoders_message(text):
    with pytest.raises(json.JSONDecodeError) as standard:
        json.JSONDecoder().decode(text)
    with pytest.raises(p.BadJson) as info:
        p.parse_envelope(text)
    assert info.value.message == f"frame is not valid JSON: {standard.value}"
    assert info.value.cid is None


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_keep_their_message(constant):
    text = f'{{"type": "add", "cid": "{CID}", "x": {constant}}}'
    with pytest.raises(p.BadJson) as info:
        p.parse_envelope(text)
    message = f"frame is not valid JSON: {constant} is not JSON; numbers must be finite"
    assert info.value.message == message


@pytest.mark.parametrize("number", ["1e999", "-1e999", "1E400"])
def test_a_number_that_overflows_is_read_as_infinity_and_out_of_range(number):
    # orjson refuses these outright ("number is infinity"); the protocol reads
    # them as the standard decoder does, and refuses them as out of range.
    text = f'{{"type": "cursor", "x": {number}, "y": 0}}'
    assert answer(text) == (
        "error",
        "bad_message",
        "x must be a number from -1,000,000 to 1,000,000",
        None,
    )
    ping = f'{{"type": "ping", "cid": "{CID}", "t": {number}}}'
    assert answer(ping) == (
        "error",
        "bad_message",
        "ping fields must hold finite numbers only",
        CID,
    )


@pytest.mark.parametrize(
    "number",
    [
        2**64,  # orjson reads it as 1.8446744073709552e+19
        -(2**63) - 1,
        10**30,
        int("9" * 4300),  # the longest integer the standard decoder reads
        2**64 - 1,  # the largest orjson reads as an integer
        -(2**63),
    ],
)
def test_a_ping_echoes_an_integer_beyond_64_bits_exactly(number):
    text = f'{{"type": "ping", "t": {number}, "n": [{number}]}}'
    assert answer(text) == (
        "pong",
        f'{{"type":"pong","t":{number},"n":[{number}]}}',
    )


def test_an_integer_of_more_than_4300_digits_is_still_bad_json():
    for text in (
        '{"type": "ping", "t": %s}' % ("9" * 4301),
        '{"type": "cursor", "x": %s, "y": 0}' % ("1" * 5000),
    ):
        with pytest.raises(p.BadJson, match="4300 digits"):
            p.parse_envelope(text)


@pytest.mark.parametrize(
    "data",
    [
        {"type": "cursor", "x": 2**64, "y": 0},
        {"type": "cursor", "x": 0, "y": -(10**40)},
        {
            "type": "add",
            "cid": CID,
            "element": {"id": "e1", "kind": "rect", "x": 2**70},
        },
        {"type": "update", "cid": CID, "id": "e1", "set": {"width": 2**64 + 1}},
        {"type": "update", "cid": CID, "id": "e1", "set": {"opacity": -(2**63) - 1}},
        {"type": "delete", "cid": CID, "ids": ["e1", 2**80]},
        {"type": 2**64, "cid": CID},
        {"type": "clear", "cid": 2**64},
        {"type": "draft", "element": {"id": "d", "kind": "line", "w": 10**19}},
    ],
)
def test_integers_beyond_64_bits_outside_a_ping_get_the_answers_they_got(
    data, monkeypatch
):
    # orjson reads them as floats; nothing but a ping shows a number back, and
    # a float that large fails every range as the integer does.
    now, before = answers(json.dumps(data), monkeypatch)
    assert now == before
    assert now[0] == "error"


@pytest.mark.parametrize(
    ("escaped", "where"),
    [
        ("\\udc00\\ud800", "value"),  # a pair in the wrong order
        ("\\ud800", "value"),
        ("\\udfff", "value"),
        ("abc\\ud83d", "value"),  # a high surrogate at the end
        ("\\ud83dx", "key"),
    ],
)
def test_lone_surrogate_escapes_are_bad_json_with_the_cid(escaped, where):
    # orjson refuses these ("no low surrogate in string"); the protocol reads
    # them and answers as it did, echoing the cid.
    pair = f'"s": "{escaped}"' if where == "value" else f'"{escaped}": 1'
    text = f'{{"type": "add", "cid": "{CID}", "element": {{{pair}}}}}'
    with pytest.raises(p.BadJson) as info:
        p.parse_envelope(text)
    assert info.value.message == (
        "frame has an unpaired UTF-16 surrogate escape (\\ud800)"
    )
    assert info.value.cid == CID


def test_nesting_orjson_reads_but_the_standard_decoder_cannot_is_still_bad_json():
    # orjson reads 1,024 levels; the standard decoder stops short of 1,000.
    for depth in (1000, 1024):
        for text in (
            f'{{"type": "ping", "a": {nested(depth)}}}',
            f'{{"type": "add", "cid": "{CID}", "element": {nested(depth)}}}',
            nested(depth),
        ):
            with pytest.raises(p.BadJson, match="maximum recursion depth exceeded"):
                p.parse_envelope(text)


@pytest.mark.parametrize("depth", [254, 255, 300, 900])
def test_nesting_the_standard_decoder_reads_gets_the_answer_it_got(depth, monkeypatch):
    for text in (
        f'{{"type": "ping", "a": {nested(depth - 1)}}}',
        f'{{"type": "add", "cid": "{CID}", "element": {nested(depth - 1)}}}',
        f'{{"type": "cursor", "x": 0, "y": 0, "z": {nested(depth - 1, "{}")}}}',
    ):
        now, before = answers(text, monkeypatch)
        assert now == before
        assert now[1] == "bad_message"


def test_a_repeated_key_keeps_its_first_place_and_its_last_value():
    text = '{"type": "ping", "a": 1, "b": 2, "a": [3]}'
    assert answer(text) == ("pong", '{"type":"pong","a":[3],"b":2}')
    add = (
        f'{{"type": "add", "cid": "{CID}", "element": {{"id": "e1", "kind": "rect", '
        '"x": "junk", "y": 2, "w": 3, "h": 4, "color": "#000000", "width": 1, '
        '"x": 1}, "type": "add"}'
    )
    assert answer(add) == (
        "message",
        repr(
            p.AddOp(
                CID,
                {
                    "id": "e1",
                    "kind": "rect",
                    "x": 1,
                    "y": 2,
                    "w": 3,
                    "h": 4,
                    "color": "#000000",
                    "width": 1,
                    "fill": None,
                    "opacity": 1,
                },
            )
        ),
    )


def test_an_ordinary_op_is_read_by_orjson_alone(monkeypatch):
    """The fast path is taken: a stroke of 2,000 points is not read twice."""

    def refuse(text):
        raise AssertionError("the standard decoder read an ordinary frame")

    monkeypatch.setattr(validation._DECODER, "decode", refuse)
    points = [[i * 0.5, -i] for i in range(2000)]
    element = {"id": "e1", "kind": "stroke", "x": 0, "y": 0, "points": points}
    element |= {"color": "#1e88e5", "width": 3}
    text = json.dumps({"type": "add", "cid": CID, "element": element})
    op = p.validate(p.parse_envelope(text), LIMITS)
    assert op.element["points"] == points
    assert p.parse_envelope('{"type": "cursor", "x": 1, "y": 2}').data["x"] == 1


# --- Writing: where orjson and the standard encoder differ -------------------------


@pytest.mark.parametrize(
    "value",
    [
        {"fill": None, "x": math.nan},  # orjson writes NaN as null
        [None, math.inf],
        ({"a": None}, -math.inf),
        {"points": [[0, 1.5], [math.nan, 2]], "by": None},
        [{"sid": None, "element": {"fill": None, "points": [[1, math.inf]]}}],
        [{"sid": None, "element": {"fill": math.nan, "by": "null"}}],
    ],
)
def test_encode_refuses_nan_and_infinity_beside_a_null(value):
    with pytest.raises(ValueError, match="Out of range float values are not JSON"):
        p.encode(value)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1e-05, "1e-05"),  # orjson: 0.00001
        (-3.008264692815159e-05, "-3.008264692815159e-05"),
        (8.8e-07, "8.8e-07"),  # orjson: 8.8e-7
        (1e-09, "1e-09"),
        (0.0001, "0.0001"),
        (1e-10, "1e-10"),
        (1e16, "1e+16"),
        ({"x": 2e-06, "y": 10.00001}, '{"x":2e-06,"y":10.00001}'),
    ],
)
def test_encode_writes_small_floats_as_the_standard_encoder_did(value, text):
    assert p.encode(value) == text


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (2**64, "18446744073709551616"),  # orjson: "Integer exceeds 64-bit range"
        ([-(2**63) - 1], "[-9223372036854775809]"),
        ({"a": "\ud800"}, '{"a":"\ud800"}'),  # orjson: surrogates not allowed
        (
            {3: "a", 2.5: "b", False: "c", None: "d"},
            '{"3":"a","2.5":"b","false":"c","null":"d"}',
        ),
        (json.loads(nested(300)), nested(300)),  # orjson writes 254 levels
        ({"ids": ("a", "b"), "sid": None}, '{"ids":["a","b"],"sid":null}'),
    ],
)
def test_encode_writes_what_orjson_refuses_as_the_standard_encoder_did(value, text):
    assert p.encode(value) == text


@dataclasses.dataclass
class Point:
    x: int


@pytest.mark.parametrize(
    "value",
    [
        Point(1),  # orjson writes dataclasses and datetimes unless told not to
        datetime.datetime(2026, 1, 1),
        {"when": datetime.date(2026, 1, 1)},
        {1, 2},
        {(1, 2): 3},
        object(),
    ],
)
def test_encode_refuses_what_is_not_json_with_the_standard_error(value):
    with pytest.raises(TypeError) as standard:
        STANDARD.encode(value)
    with pytest.raises(TypeError) as info:
        p.encode(value)
    assert str(info.value) == str(standard.value)


class Shade(enum.Enum):
    DARK = "dark"


def test_encode_writes_uuids_and_plain_enums_which_no_frame_holds():
    # The one difference left: orjson writes these, the standard encoder raised
    # TypeError. No frame holds one (frames are built from JSON values).
    assert p.encode({"id": uuid.UUID(int=1), "shade": Shade.DARK}) == (
        '{"id":"00000000-0000-0000-0000-000000000001","shade":"dark"}'
    )


def test_encode_writes_every_character_as_the_standard_encoder_did():
    text = "".join(chr(i) for i in range(0x110000) if not 0xD800 <= i < 0xE000)
    assert p.encode({text: text}) == STANDARD.encode({text: text})
    assert p.encode('caf\u00e9 \U0001f600 \u2028\x7f"\\') == (
        '"caf\u00e9 \U0001f600 \u2028\x7f\\"\\\\"'
    )


def test_an_ordinary_frame_is_written_by_orjson_alone(monkeypatch):
    def refuse(value):
        raise AssertionError("the standard encoder wrote an ordinary frame")

    monkeypatch.setattr(frames._STANDARD, "encode", refuse)
    element = {"id": "e1", "kind": "stroke", "x": 0.5, "y": -2, "fill": None}
    element |= {"points": [[i / 3, -i] for i in range(100)], "by": "Quick Otter"}
    text = p.encode([{"op": "add", "seq": 7, "sid": None, "element": element}])
    assert json.loads(text) == [
        {"op": "add", "seq": 7, "sid": None, "element": element}
    ]
    ack = frames.ack(CID, 2**63 - 1)
    assert ack == f'{{"type":"ack","cid":"{CID}","seq":{2**63 - 1}}}'


# --- Wholesale: generated frames and values -----------------------------------------

# Pieces that make orjson and the standard decoder part ways, spliced into frames.
SPLICES = [
    "NaN",
    "-Infinity",
    "1e999",
    "-1e400",
    "\\ud800",
    "\\udc00",
    "\\ud83d\\ude00",
    "\ud800",  # a raw lone surrogate: daphne refuses it, the decoders do not
    "18446744073709551616",
    "-9223372036854775809",
    "9" * 25,
    "9" * 4301,
    "0.000001",
    "01",
    "1.",
    ".5",
    "-",
    "1e5",
    ",",
    "]",
    "}",
    "[",
    "{",
    '"',
    "\\",
    " ",
    "\t",
    "\x00",
    "\x1f",
    "\ufeff",
    "\u00a0",
    "true",
    "nul",
    '"a":1,',
    nested(300),
    nested(1010),
]


def generated_frames(seed: int, count: int):
    rng = random.Random(seed)
    fuzzer = Fuzzer(rng, FuzzLimits(LIMITS.max_frame_bytes, 5000, 50000))
    fuzzer.start({"you": {"sid": "s1", "name": "Quick Otter"}})
    made = 0
    while made < count:
        text = fuzzer.next_case().payload
        if not isinstance(text, str):
            continue
        yield text
        for _ in range(2):
            at = rng.randrange(len(text) + 1)
            cut = at + rng.choice([0, 0, 1, 2])
            yield text[:at] + rng.choice(SPLICES) + text[cut:]
        made += 1


def test_generated_frames_get_the_answers_the_standard_decoder_gave(monkeypatch):
    differ = []
    for text in generated_frames(seed=20261211, count=1500):
        now, before = answers(text, monkeypatch)
        if now != before:
            differ.append((text[:300], now, before))
    assert not differ, differ[:5]


def json_value(rng: random.Random, depth: int = 0):
    roll = rng.random()
    if depth < 4 and roll < 0.15:
        items = [json_value(rng, depth + 1) for _ in range(rng.randrange(5))]
        return items if rng.random() < 0.8 else tuple(items)
    if depth < 4 and roll < 0.3:
        keys = [json_string(rng) for _ in range(rng.randrange(5))]
        return {key: json_value(rng, depth + 1) for key in keys}
    if roll < 0.4:
        return json_string(rng)
    if roll < 0.5:
        return rng.choice([None, True, False])
    if roll < 0.7:
        return rng.choice(
            [
                rng.randrange(-1000, 1000),
                rng.randrange(-(2**70), 2**70),
                rng.choice(
                    [2**63 - 1, 2**63, 2**64 - 1, 2**64, -(2**63), -(2**63) - 1]
                ),
            ]
        )
    return json_float(rng)


def json_float(rng: random.Random) -> float:
    roll = rng.random()
    if roll < 0.02:
        return rng.choice([math.nan, math.inf, -math.inf, -0.0])
    if roll < 0.3:
        return struct.unpack("<d", rng.getrandbits(64).to_bytes(8, "little"))[0]
    if roll < 0.6:
        return rng.uniform(-1, 1) * 10 ** rng.randint(-12, 6)
    return round(rng.uniform(-1e6, 1e6), rng.randrange(4))


def json_string(rng: random.Random) -> str:
    pool = 'ab"\\/\x00\x1f\x7f\n\u00e9\u2028\U0001f600{}[],:0e-.'
    if rng.random() < 0.01:
        pool += "\ud800"
    return "".join(rng.choice(pool) for _ in range(rng.randrange(8)))


def written(encode, value) -> tuple:
    try:
        return ("text", encode(value))
    except (TypeError, ValueError) as exc:
        return (type(exc), str(exc))


def test_generated_values_are_written_as_the_standard_encoder_wrote_them():
    rng = random.Random(20261211)
    differ = []
    for _ in range(20000):
        value = json_value(rng)
        now, before = written(p.encode, value), written(STANDARD.encode, value)
        if now != before:
            differ.append((value, now, before))
    assert not differ, differ[:5]
