"""Every frame the server sends, built here and encoded by one encoder.

Frames that carry stored JSON (elements, op entries) are assembled from that
text as it is, so a large board is served without decoding and re-encoding
each element. Large payloads are split at element or op-entry boundaries so
that no frame holds much more than `FRAME_BUDGET` bytes (PROTOCOL.md, "Frame
size"): a client never needs a receive limit above 1 MiB.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from operator import attrgetter
from typing import Any, TypeVar

import orjson

from .messages import (
    ACK,
    BOARD,
    BYE,
    CURSORS,
    DRAFT,
    ERROR,
    FEATURES,
    JOINED,
    LEFT,
    PONG,
    PROTOCOL_VERSION,
    VIEWPORTS,
    WELCOME,
    Limits,
    Ping,
    ProtocolError,
)

FRAME_BUDGET = 256 * 1024

T = TypeVar("T")

# The standard encoder defines what encode() returns; orjson writes the same
# text several times faster (bench/json_choices.py, docs/performance.md), and
# every value it writes differently, or not at all, is handed to the standard
# encoder instead:
# - what orjson refuses (integers beyond 64 bits, strings with a lone
#   surrogate, keys that are not strings, nesting deeper than 254 levels, any
#   type that is not JSON; dataclasses and datetimes are refused on purpose):
#   the standard encoder writes it, or raises its own error;
# - NaN and infinities, which orjson writes as `null`;
# - floats from 1e-9 to 1e-4 in size, which orjson writes as `1e-7` or
#   `0.00001` where the standard encoder writes `1e-07` and `1e-05`.
_STANDARD = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)
_OPTIONS = orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_DATETIME
# Each float orjson writes unlike the standard encoder, found in its text (a
# match inside a string only costs the slower path).
_TINY_FLOAT = re.compile(rb"[0-9]e-[0-9](?![0-9])|(?<![0-9.])0\.0000")


def encode(value: Any) -> str:
    """Compact JSON text, non-ASCII characters as they are; refuses NaN and
    infinities, which JSON cannot carry (ValueError)."""
    try:
        raw = orjson.dumps(value, option=_OPTIONS)
    except orjson.JSONEncodeError:
        return _STANDARD.encode(value)
    # Each None, NaN and infinity is one `null` in `raw` (a string may hold
    # more): as many `null`s as Nones counted means no NaN. Else the text is
    # read back, where a NaN reads as None (and a tuple as a list: a false
    # alarm, which only costs the standard encoder).
    nulls = raw.count(b"null")
    if nulls and nulls != _nones(value) and orjson.loads(raw) != value:
        return _STANDARD.encode(value)  # NaN or infinity: ValueError
    if (b"e-" in raw or b"0.0000" in raw) and _TINY_FLOAT.search(raw):
        return _STANDARD.encode(value)
    return raw.decode()


def _nones(value: Any, depth: int = 4) -> int:
    """How many Nones `value` holds, or fewer: counted in its dicts and lists of
    dicts, a few levels deep, never in other lists (the points of a stroke)."""
    if type(value) is dict:
        items = [*value.values()]
    elif type(value) is list and value and type(value[0]) is dict:
        items = value
    else:
        return 0
    count = items.count(None)
    if depth:
        for item in items:
            if type(item) is dict or type(item) is list:
                count += _nones(item, depth - 1)
    return count


def size(text: str) -> int:
    """The UTF-8 length of `text`, without encoding it when it is ASCII."""
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


# --- Elements and op entries, as stored ----------------------------------------


def element_text(body: str, v: int) -> str:
    """A full element: its stored body (a JSON object without `v`) plus `v`."""
    return f'{body[:-1]},"v":{v}}}'


@dataclass(frozen=True)
class Entries:
    """Consecutive encoded op entries for seqs `first`..`last`, without brackets."""

    first: int
    last: int
    text: str


def entries_of(first: int, last: int, array: str) -> list[Entries]:
    """The stored JSON array of one op's entries, as pieces that fit a frame.

    An op of many entries (an undo of a clear) can be larger than a frame; it
    is cut into its entries, which are then packed into frames one by one.
    """
    inner = array[1:-1]
    if first == last or size(inner) <= FRAME_BUDGET:
        return [Entries(first, last, inner)] if inner else []
    return [Entries(e["seq"], e["seq"], encode(e)) for e in orjson.loads(array)]


# --- The state a joining client receives --------------------------------------


def board_info(
    *, slug: str, title: str, role: str, locked: bool, epoch: str | None = None
) -> dict:
    """`welcome.board` (with the epoch) and the `board` frame's board."""
    info = {"slug": slug, "title": title, "role": role, "locked": locked}
    if epoch is not None:
        info["epoch"] = epoch
    return info


def welcome(
    *, board: dict, you: dict, users: list[dict], seq: int, limits: Limits
) -> str:
    return encode(
        {
            "type": WELCOME,
            "protocol": PROTOCOL_VERSION,
            "features": list(FEATURES),
            "board": board,
            "you": you,
            "users": users,
            "seq": seq,
            "limits": limits.as_dict(),
        }
    )


def packed(
    items: Iterable[T], text_of: Callable[[T], str], budget: int = FRAME_BUDGET
) -> Iterator[list[T]]:
    """Runs of items whose texts take at most `budget` bytes in all, one frame
    each (one item at least, so a larger item is a frame of its own).

    A run is produced once the next item does not fit, so a reader that stops
    after some runs has consumed one item more than it was given.
    """
    run: list[T] = []
    used = 0
    for item in items:
        cost = size(text_of(item)) + 1
        if run and used + cost > budget:
            yield run
            run, used = [], 0
        run.append(item)
        used += cost
    if run:
        yield run


def _itself(text: str) -> str:
    return text


def snapshot_frame(seq: int, elements: Iterable[str], *, more: bool) -> str:
    """One `snapshot` frame of these element texts."""
    tail = "true" if more else "false"
    return (
        f'{{"type":"snapshot","seq":{seq},"elements":['
        + ",".join(elements)
        + f'],"more":{tail}}}'
    )


def snapshot_frames(
    seq: int, elements: Iterable[str], budget: int = FRAME_BUDGET
) -> Iterator[str]:
    """A whole snapshot of these element texts, as frames within `budget`;
    an empty board is one frame with `[]`."""
    previous: list[str] | None = None
    for run in packed(elements, _itself, budget):
        if previous is not None:
            yield snapshot_frame(seq, previous, more=True)
        previous = run
    yield snapshot_frame(seq, previous or (), more=False)


@dataclass(frozen=True)
class OpsFrame:
    """An encoded `ops` frame and the seqs it holds."""

    first: int
    last: int
    text: str


def ops_frames(
    pieces: Iterable[Entries], budget: int = FRAME_BUDGET
) -> Iterator[OpsFrame]:
    """`ops` frames holding these entries in order, each within `budget` bytes
    (plus one entry when a single entry is larger)."""
    for run in packed(pieces, attrgetter("text"), budget):
        yield ops_frame(run)


def ops_frame(run: list[Entries]) -> OpsFrame:
    text = '{"type":"ops","ops":[' + ",".join(p.text for p in run) + "]}"
    return OpsFrame(run[0].first, run[-1].last, text)


def no_ops() -> str:
    """The replay for a client that is already up to date."""
    return '{"type":"ops","ops":[]}'


def ops_of(entries: list[dict]) -> str:
    """An `ops` frame of decoded entries (a replay trimmed to unseen seqs)."""
    return encode({"type": "ops", "ops": entries})


# --- Answers to one client --------------------------------------------------------


def ack(cid: str, seq: int) -> str:
    return encode({"type": ACK, "cid": cid, "seq": seq})


def error_frame(code: str, message: str, cid: str | None = None) -> str:
    """An `error` frame; `cid` is echoed so the client knows which op was refused."""
    frame = {"type": ERROR, "code": code, "message": message}
    if cid is not None:
        frame["cid"] = cid
    return encode(frame)


def error(exc: ProtocolError) -> str:
    return error_frame(exc.code, exc.message, exc.cid)


def pong(ping: Ping) -> str:
    return encode({"type": PONG, **ping.extra})


def board(info: dict) -> str:
    return encode({"type": BOARD, "board": info})


def bye(reason: str = "restart") -> str:
    return encode({"type": BYE, "reason": reason})


# --- Presence and volatile traffic --------------------------------------------------


# A join or leave reaches every connection on the board in turn, each of which
# sends the same frame: encode it once per event, not once per receiver.


def joined(user: Mapping[str, Any]) -> str:
    try:
        return _joined(tuple(user.items()))
    except TypeError:  # a value that cannot be a cache key
        return encode({"type": JOINED, "user": dict(user)})


@lru_cache(maxsize=256)
def _joined(user: tuple[tuple[str, Any], ...]) -> str:
    return encode({"type": JOINED, "user": dict(user)})


@lru_cache(maxsize=256)
def left(sid: str) -> str:
    return encode({"type": LEFT, "sid": sid})


def cursor_item(sid: str, x: float, y: float) -> str:
    """One entry of a `cursors` frame, encoded once for every receiver."""
    return encode({"sid": sid, "x": x, "y": y})


def cursors(items: Iterable[str]) -> str:
    return '{"type":"' + CURSORS + '","cursors":[' + ",".join(items) + "]}"


def viewport_item(
    sid: str, x: float, y: float, w: float, h: float, follows: str | None = None
) -> str:
    """One entry of a `viewports` frame (version 1.1), encoded once; `follows`
    only when the sender follows someone."""
    item: dict = {"sid": sid, "x": x, "y": y, "w": w, "h": h}
    if follows is not None:
        item["follows"] = follows
    return encode(item)


def viewports(items: Iterable[str]) -> str:
    return '{"type":"' + VIEWPORTS + '","viewports":[' + ",".join(items) + "]}"


def draft(sid: str, element: dict | None) -> str:
    return encode({"type": DRAFT, "sid": sid, "element": element})
