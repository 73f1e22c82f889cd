"""Generated and mutated client frames, each with the answer PROTOCOL.md prescribes.

Pure Python (no sockets): tests/test_fuzz.py sends the frames to a live daphne
and checks every answer. A `Fuzzer` keeps a model of the board (live elements
in stacking order, every id ever used, every committed cid), so that it also
knows when a valid op must be `not_found`, `exists` or `board_full`, and what
the committed op entry must hold (its seq included).

Each case has exactly one defect, or none: its expected answer then follows
from the protocol's check order alone, without a second implementation of the
validator. Semantics-preserving encodings (duplicate keys whose earlier value
is junk, `\\u` escapes, whitespace) are layered on top and keep the answer.
"""

from __future__ import annotations

import json
import math
import re
import string
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

ID_CHARS = string.ascii_letters + string.digits + "_-"
KIND_FIELDS = {
    "stroke": ("points",),
    "line": ("points",),
    "arrow": ("points",),
    "rect": ("w", "h"),
    "ellipse": ("w", "h"),
    "text": ("text", "size"),
    "note": ("w", "h", "text", "size"),  # version 1.1
}
KINDS = tuple(KIND_FIELDS)
STYLE = ("color", "width", "fill", "opacity")
# A note has no width, and its fill is required (PROTOCOL.md 1.1, "Notes").
KIND_STYLE = {**dict.fromkeys(KINDS, STYLE), "note": ("color", "fill", "opacity")}
REQUIRED = {
    **dict.fromkeys(KINDS, ("color", "width")),
    "note": ("color", "fill"),
}
NOTE_SIDE = (20, 2000)
OP_TYPES = ("add", "update", "delete", "clear", "undo", "redo")
COORD = 1_000_000
INT_DIGITS = 4300  # Python's int/str conversion limit (sys.get_int_max_str_digits)
PING_MAX_DEPTH = 64
BARRIER = "fz-barrier"
# Frames that may reach any connection at any time.
NOISE = frozenset({"joined", "left", "cursors", "draft", "viewports"})


# --- JSON text the standard encoder cannot write --------------------------------


class Raw:
    """JSON text written as it is: NaN, 1e400, escapes, deep nesting."""

    def __init__(self, text: str):
        self.text = text


class Pairs:
    """An object as (key, value) pairs, so that a key may repeat."""

    def __init__(self, items):
        self.items = list(items)


_PLACEHOLDER = re.compile(r'"\\u0000fz(\d+)\\u0000"')


def dump(value: Any, escape: Callable[[str], str] | None = None) -> str:
    """Compact JSON of `value`; strings go through `escape` when given."""
    if escape is not None:
        return _dump_escaped(value, escape)
    pieces: list[str] = []

    def hook(obj: Any) -> str:
        if isinstance(obj, Raw):
            pieces.append(obj.text)
        elif isinstance(obj, Pairs):
            pieces.append(
                "{" + ",".join(f"{dump(k)}:{dump(v)}" for k, v in obj.items) + "}"
            )
        else:
            raise TypeError(obj)
        return f"\x00fz{len(pieces) - 1}\x00"

    text = json.dumps(
        value, ensure_ascii=False, allow_nan=False, separators=(",", ":"), default=hook
    )
    return _PLACEHOLDER.sub(lambda m: pieces[int(m[1])], text) if pieces else text


def _dump_escaped(value: Any, escape: Callable[[str], str]) -> str:
    if isinstance(value, Raw):
        return value.text
    if isinstance(value, Pairs | dict):
        items = value.items if isinstance(value, Pairs) else value.items()
        inner = ",".join(
            f"{_dump_escaped(k, escape)}:{_dump_escaped(v, escape)}" for k, v in items
        )
        return "{" + inner + "}"
    if type(value) is list:
        return "[" + ",".join(_dump_escaped(item, escape) for item in value) + "]"
    if type(value) is str:
        return escape(value)
    return json.dumps(value, allow_nan=False)


def nested(depth: int, inner: str = "0") -> Raw:
    return Raw("[" * depth + inner + "]" * depth)


def same(a: Any, b: Any) -> bool:
    """Equal as JSON values, strictly: 1 is not 1.0 nor true, -0.0 is not 0.0."""
    if type(a) is not type(b):
        return False
    if type(a) is float:
        return a == b and math.copysign(1, a) == math.copysign(1, b)
    if type(a) is dict:
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if type(a) is list:
        return len(a) == len(b) and all(map(same, a, b))
    return a == b


# --- what a frame must be answered with -------------------------------------------


@dataclass
class Expect:
    """The answer to one frame.

    kind: "error" (code, cid echoed or None), "pong" (extra), "silent" (a valid
    cursor or draft: nothing to the sender), "commit" (entries: the op entries
    the ops frames must carry for this cid), "ack" (seq), "history" (an undo or
    redo: its entries, or nothing_to_undo/nothing_to_redo/board_full), "close"
    (the connection ends with `close`, nothing answered).

    deferred: answered after the op's batch is committed, so matched by cid.
    """

    kind: str
    code: str | None = None
    cid: str | None = None
    deferred: bool = False
    extra: dict | None = None
    entries: list | None = None
    seq: int | None = None
    close: tuple = ()

    @property
    def refusal(self) -> int:
        """How many refusals (error frames) it may cost, at most."""
        return 1 if self.kind in {"error", "history"} else 0


@dataclass
class Case:
    label: str
    payload: str | bytes
    expect: Expect
    # "text", "binary", or "raw-text" (bytes sent as a text frame: not UTF-8)
    frame: str = "text"

    def short(self, limit: int = 300) -> str:
        text = self.payload if isinstance(self.payload, str) else repr(self.payload)
        return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} chars)"


def error(code: str, cid: Any = None, deferred: bool = False) -> Expect:
    return Expect("error", code, cid if type(cid) is str else None, deferred)


# --- the board as the fuzzing client knows it --------------------------------------


@dataclass
class BoardModel:
    seq: int = 0
    order: list = field(default_factory=list)  # every id seen, stacking order
    live: dict = field(default_factory=dict)  # id -> stored element (v, by)
    tombs: dict = field(default_factory=dict)  # id -> stored element, v = delete seq
    used: set = field(default_factory=set)  # ids that exist or ever existed
    committed: dict = field(default_factory=dict)  # cid -> last seq it produced

    def elements(self) -> list:
        return [self.live[i] for i in self.order if i in self.live]

    def apply(self, entry: dict) -> None:
        """One op entry, by the protocol's convergence rule."""
        seq, op = entry["seq"], entry["op"]
        self.seq = max(self.seq, seq)
        self.committed[entry["cid"]] = max(self.committed.get(entry["cid"], 0), seq)
        if op == "add":
            element = dict(entry["element"])  # the model's own: updates change it
            eid = element["id"]
            self.used.add(eid)
            if eid not in self.order:
                self.order.append(eid)
            self.tombs.pop(eid, None)
            self.live[eid] = element
        elif op == "update":
            element = self.live.get(entry["id"])
            if element is not None and seq > element["v"]:
                element.update(entry["set"], v=seq)
        elif op == "delete":
            for eid in entry["ids"]:
                self.erase(eid, seq)
        elif op == "clear":
            for eid in [i for i, e in self.live.items() if e["v"] < seq]:
                self.erase(eid, seq)

    def erase(self, eid: str, seq: int) -> None:
        element = self.live.pop(eid, None)
        if element is not None:
            self.tombs[eid] = {**element, "v": seq}

    def reset(self, seq: int, elements: list) -> None:
        """After a snapshot: what it holds is the truth; used ids stay used."""
        self.seq, self.live, self.tombs = seq, {}, {}
        kept = [e["id"] for e in elements]
        self.order = kept + [i for i in self.order if i not in set(kept)]
        for element in elements:
            self.live[element["id"]] = dict(element)
            self.used.add(element["id"])


# --- the generator --------------------------------------------------------------------


@dataclass
class Limits:
    max_frame_bytes: int
    max_points: int
    max_elements: int

    @classmethod
    def of(cls, welcome: dict) -> Limits:
        limits = welcome["limits"]
        return cls(
            limits["max_frame_bytes"], limits["max_points"], limits["max_elements"]
        )


class Fuzzer:
    """Makes cases for one board, predicting each answer from its model."""

    def __init__(self, rng, limits: Limits, board: BoardModel | None = None):
        self.rng = rng
        self.limits = limits
        self.board = board or BoardModel()
        self.last_text = ""
        self.sid = self.by = None
        self.counter = 0
        self.valid_cids: set = set()  # every cid sent in a frame that may commit
        self.burnt: set = set()  # ids and cids whose fate is unknown (a crash)

    def start(self, welcome: dict) -> None:
        self.sid = welcome["you"]["sid"]
        self.by = welcome["you"]["name"]

    # -- building blocks ---------------------------------------------------------------

    def pick(self, items):
        return items[self.rng.randrange(len(items))]

    def chance(self, p: float) -> bool:
        return self.rng.random() < p

    def token(self, lo: int, hi: int) -> str:
        n = self.rng.randint(lo, hi)
        return "".join(self.rng.choice(ID_CHARS) for _ in range(n))

    def new_cid(self) -> str:
        """A cid never sent before: a counter, padded with random id characters."""
        self.counter += 1
        head = f"fz{self.counter:x}-"
        return head + self.token(max(0, 8 - len(head)), 64 - len(head))

    def new_id(self) -> str:
        while True:
            eid = self.token(1, 64) if self.chance(0.5) else self.token(1, 6)
            if eid not in self.board.used and eid not in self.burnt:
                return eid

    def number(self, lo: float, hi: float) -> Any:
        """A number in [lo, hi], edges and odd representations favoured."""
        edges = [lo, hi, float(lo), float(hi), 0, -0.0, 5e-324, 1e-320, 0.1, 1]
        edges = [v for v in edges if lo <= v <= hi]
        roll = self.rng.random()
        if roll < 0.3:
            return self.pick(edges)
        if roll < 0.6:
            return self.rng.randint(math.ceil(lo), math.floor(hi))
        return self.rng.uniform(lo, hi)

    def text(self, lo: int, hi: int) -> str:
        alphabets = [
            string.printable,
            'aé€😀\u0301\u200d\n\t"\\/\x00\x1f',
            "".join(chr(c) for c in range(0x3000, 0x3040)),
        ]
        chars = self.pick(alphabets)
        n = self.rng.randint(lo, hi)
        return "".join(self.rng.choice(chars) for _ in range(n))

    def color(self) -> str:
        return "#" + "".join(
            self.rng.choice("0123456789abcdefABCDEF") for _ in "123456"
        )

    def points(self, lo: int, hi: int) -> list:
        n = self.rng.randint(lo, hi)
        if n > 50:  # a long stroke: plain numbers, quickly
            uniform = self.rng.uniform
            return [[uniform(-COORD, COORD), uniform(-COORD, COORD)] for _ in range(n)]
        number = self.number
        return [[number(-COORD, COORD), number(-COORD, COORD)] for _ in range(n)]

    def point_count(self, lo: int) -> int:
        if self.chance(0.002):
            return self.limits.max_points
        return self.rng.randint(lo, min(self.limits.max_points, 12))

    def kind_value(self, name: str, draft: bool = False, kind: str = "") -> Any:
        """A valid value of one field (of an element of `kind`, or of any)."""
        if kind == "note":
            value = self.note_value(name)
            if value is not None:
                return value
        if name in {"x", "y", "w", "h"}:
            return self.number(-COORD, COORD)
        if name == "points":
            n = self.point_count(1 if draft else 2)
            return self.points(n, n)
        if name == "text":
            if self.chance(0.05):
                return self.pick(["😀" * 2000, "x" * 2000, "\U0010ffff"])
            return self.text(1, 40)
        if name == "size":
            return self.number(1, 1000)
        if name == "color":
            return self.color()
        if name == "width":
            return self.number(1, 64)
        if name == "fill":
            return None if self.chance(0.4) else self.color()
        if name == "opacity":
            return self.number(0.05, 1)
        raise AssertionError(name)

    def note_value(self, name: str) -> Any:
        """A valid value of a note's field where the note's rule is its own,
        else None."""
        if name in {"w", "h"}:
            return self.number(*NOTE_SIDE)
        if name == "text" and self.chance(0.2):
            return ""
        if name == "fill":
            return self.color()
        return None

    def element(self, kind: str | None = None, draft: bool = False):
        """A valid element as sent, and as the server must store it (no v/by)."""
        kind = kind or self.pick(KINDS)
        sent = {"id": self.new_id(), "kind": kind}
        for name in ("x", "y", *KIND_FIELDS[kind], *REQUIRED[kind]):
            sent[name] = self.kind_value(name, draft, kind)
        defaults = {"fill": None, "opacity": 1}
        for name in REQUIRED[kind]:
            defaults.pop(name, None)
        for name in defaults:
            if self.chance(0.5):
                sent[name] = self.kind_value(name, kind=kind)
        stored = {**defaults, **sent}
        order = ("id", "kind", "x", "y", *KIND_FIELDS[kind], *KIND_STYLE[kind])
        stored = {k: stored[k] for k in order}
        if self.chance(0.2):  # ignored by the server, whatever they hold
            sent["v"] = self.pick([-1, 10**30, "x", None, [1], Raw("1e400")])
        if self.chance(0.2):
            sent["by"] = self.pick(["Mallory", 7, None, {"a": 1}])
        return self.shuffled(sent), stored

    def shuffled(self, data: dict) -> dict:
        items = list(data.items())
        self.rng.shuffle(items)
        return dict(items)

    def entry(self, cid: str, seq: int, op: str, **fields) -> dict:
        return {
            "op": op,
            "seq": seq,
            "cid": cid,
            "sid": self.sid,
            "by": self.by,
            **fields,
        }

    # -- encoding ----------------------------------------------------------------

    def encode(self, data: Any) -> str:
        """`data` as JSON text, often in a form that decodes to the same value."""
        self.last_text = dump(data)
        roll = self.rng.random()
        if roll < 0.15 and isinstance(data, dict) and data:
            return self.with_duplicate_key(data)
        if roll < 0.3 and len(self.last_text) < 20_000:
            return dump(data, self.escaper())
        if roll < 0.35 and _plain(data):
            return json.dumps(data, indent=self.rng.randint(0, 3)) + " \n"
        return self.last_text

    def with_duplicate_key(self, data: dict) -> str:
        """A key given twice: the decoder keeps the last value, the real one."""
        key = self.pick(list(data))
        junk = self.pick([None, "junk", 12, [1, 2], {"x": 1}, Raw("-0.0")])
        pairs = Pairs([(key, junk), *data.items()])
        return dump(pairs)

    def escaper(self) -> Callable[[str], str]:
        def escape(text: str) -> str:
            out = []
            for ch in text:
                if self.chance(0.3):
                    code = ord(ch)
                    if code > 0xFFFF:
                        code -= 0x10000
                        high, low = 0xD800 + (code >> 10), 0xDC00 + (code & 0x3FF)
                        out.append(f"\\u{high:04x}\\u{low:04X}")
                    else:
                        out.append(f"\\u{code:04x}")
                else:
                    out.append(json.dumps(ch, ensure_ascii=False)[1:-1])
            return '"' + "".join(out) + '"'

        return escape

    def case(self, label: str, data: Any, expect: Expect) -> Case:
        return self.sized(Case(label, self.encode(data), expect))

    def sized(self, case: Case) -> Case:
        """A frame over max_frame_bytes is not read: the answer is close 1009."""
        payload = case.payload
        size = (
            len(payload.encode("utf-8", "surrogatepass"))
            if isinstance(payload, str)
            else len(payload)
        )
        if size > self.limits.max_frame_bytes and case.expect.kind != "close":
            case.label += "/oversize"
            case.expect = Expect("close", close=(1009,))
        return case

    # -- valid ops ----------------------------------------------------------------

    def valid_add(self) -> Case:
        sent, stored = self.element()
        cid = self.new_cid()
        frame = {"type": "add", "cid": cid, "element": sent}
        if len(self.board.live) >= self.limits.max_elements:
            return self.case("add/board_full", frame, error("board_full", cid, True))
        seq = self.board.seq + 1
        full = {**stored, "by": self.by, "v": seq}
        entry = self.entry(cid, seq, "add", element=full)
        return self.commit("add/valid", frame, [entry])

    def commit(self, label: str, frame: dict, entries: list) -> Case:
        cid = frame["cid"]
        self.valid_cids.add(cid)
        expect = Expect("commit", cid=cid, deferred=True, entries=entries)
        case = self.case(label, frame, expect)
        if case.expect is expect:  # not too big to be read
            for entry in entries:
                self.board.apply(json.loads(json.dumps(entry)))
        return case

    def live_element(self):
        return (
            self.board.live[self.pick(sorted(self.board.live))]
            if self.board.live
            else None
        )

    def valid_set(self, kind: str) -> dict:
        names = ("x", "y", *KIND_FIELDS[kind], *KIND_STYLE[kind])
        chosen = self.rng.sample(names, self.rng.randint(1, len(names)))
        return {name: self.kind_value(name, kind=kind) for name in chosen}

    def valid_update(self) -> Case:
        element = self.live_element()
        if element is None:
            return self.valid_add()
        cid = self.new_cid()
        changes = self.valid_set(element["kind"])
        frame = {"type": "update", "cid": cid, "id": element["id"], "set": changes}
        seq = self.board.seq + 1
        entry = self.entry(cid, seq, "update", id=element["id"], set=changes)
        return self.commit(f"update/valid/{element['kind']}", frame, [entry])

    def valid_delete(self) -> Case:
        if not self.board.live:
            return self.valid_add()
        live = sorted(self.board.live)
        ids = self.rng.sample(live, self.rng.randint(1, min(len(live), 5)))
        extra = [self.token(1, 8) for _ in range(self.rng.randint(0, 3))]
        extra += self.rng.sample(
            sorted(self.board.tombs), min(2, len(self.board.tombs))
        )
        ids = ids + extra + (ids[:1] if self.chance(0.3) else [])
        self.rng.shuffle(ids)
        cid = self.new_cid()
        frame = {"type": "delete", "cid": cid, "ids": ids}
        erased = [i for i in dict.fromkeys(ids) if i in self.board.live]
        entry = self.entry(cid, self.board.seq + 1, "delete", ids=erased)
        return self.commit("delete/valid", frame, [entry])

    def valid_clear(self) -> Case:
        cid = self.new_cid()
        entry = self.entry(cid, self.board.seq + 1, "clear")
        return self.commit("clear/valid", {"type": "clear", "cid": cid}, [entry])

    def history(self) -> Case:
        """An undo or redo: what it does is read from its answer (see Runner)."""
        kind = self.pick(["undo", "redo"])
        cid = self.new_cid()
        self.valid_cids.add(cid)
        expect = Expect("history", cid=cid, deferred=True)
        return self.case(f"{kind}/valid", {"type": kind, "cid": cid}, expect)

    def resend(self) -> Case:
        """A committed cid again, with any content: acked, nothing looked at."""
        cids = sorted(set(self.board.committed) - self.burnt)
        if not cids:
            return self.valid_add()
        cid = self.pick(cids)
        frame = {"type": self.pick(OP_TYPES), "cid": cid}
        if self.chance(0.7):
            frame[self.pick(["element", "ids", "junk", "set"])] = self.pick(
                [None, [1], {"id": "???"}, Raw("1e400"), "x" * 300]
            )
        expect = Expect("ack", cid=cid, deferred=True, seq=self.board.committed[cid])
        return self.case("resend/ack", frame, expect)

    # -- valid volatile messages -------------------------------------------------------

    def ping_value(self, depth: int = 0) -> Any:
        roll = self.rng.random()
        if depth < 4 and roll < 0.15:
            return [self.ping_value(depth + 1) for _ in range(self.rng.randint(0, 4))]
        if depth < 4 and roll < 0.3:
            n = self.rng.randint(0, 4)
            return {self.text(0, 8): self.ping_value(depth + 1) for _ in range(n)}
        return self.pick(
            [
                None,
                True,
                False,
                0,
                -0.0,
                1e308,
                -1e308,
                5e-324,
                2**64,
                -(2**63),
                int("9" * INT_DIGITS),
                self.rng.random(),
                self.text(0, 30),
                "",
                "\U0001f600\u0000",
            ]
        )

    def valid_ping(self) -> Case:
        extra = {}
        for _ in range(self.rng.randint(0, 4)):
            key = self.pick(
                ["t", "n", "cid", "", "pad", "\u00e9", "type2", self.text(1, 5)]
            )
            extra[key] = self.ping_value()
        if self.chance(0.05):
            extra["deep"] = json.loads(nested(PING_MAX_DEPTH - 1).text)
        if self.chance(0.02):
            extra["long"] = "€" * self.rng.randint(
                1000, self.limits.max_frame_bytes // 8
            )
        data = {"type": "ping", **extra}
        return self.case("ping/valid", data, Expect("pong", extra=extra))

    def valid_cursor(self) -> Case:
        data = {
            "type": "cursor",
            "x": self.number(-COORD, COORD),
            "y": self.number(-COORD, COORD),
        }
        return self.case("cursor/valid", data, Expect("silent"))

    def valid_viewport(self) -> Case:
        data = {
            "type": "viewport",
            "x": self.number(-COORD, COORD),
            "y": self.number(-COORD, COORD),
            "w": self.number(5e-324, COORD),
            "h": self.number(5e-324, COORD),
        }
        return self.case("viewport/valid", self.shuffled(data), Expect("silent"))

    def valid_draft(self) -> Case:
        if self.chance(0.2):
            return self.case(
                "draft/null", {"type": "draft", "element": None}, Expect("silent")
            )
        sent, _ = self.element(draft=True)
        if self.chance(0.3) and self.board.used:  # ids are not checked for drafts
            sent["id"] = self.pick(sorted(self.board.used))
        return self.case(
            "draft/valid", {"type": "draft", "element": sent}, Expect("silent")
        )

    # -- invalid fields ----------------------------------------------------------------

    def bad_number(self, lo: float, hi: float) -> Any:
        below = lo - (1 if hi - lo > 10 else 0.001)
        above = hi + (1 if hi - lo > 10 else 0.001)
        return self.pick(
            [
                below,
                above,
                math.nextafter(lo, -math.inf),
                math.nextafter(hi, math.inf),
                1e308,
                -1e308,
                2**64,
                -(2**64),
                int("9" * INT_DIGITS),
                Raw("1e400"),
                Raw("-1e400"),
                Raw("1" + "0" * 400 + ".5"),
                *self.wrong_types(),
            ]
        )

    def wrong_types(self) -> list:
        return ["1", "", True, False, None, [], {}, [1, 2], {"a": 1}, nested(40)]

    def bad_value(self, name: str, draft: bool = False, kind: str = "") -> Any:
        """A value `name` of an element of `kind` must refuse; with no kind, a
        value every kind refuses (an update's `set` is checked before its
        element, and so its kind, is known)."""
        if kind == "note" and name in {"w", "h"}:
            return self.pick([self.bad_number(*NOTE_SIDE), 0, -100, 19.5])
        if kind == "note" and name == "fill":
            return self.pick([None, self.bad_value("color")])
        if kind == "text" and name == "text" and self.chance(0.3):
            return ""
        if name in {"x", "y", "w", "h"}:
            return self.bad_number(-COORD, COORD)
        if name == "size":
            return self.pick([self.bad_number(1, 1000), 0, -0.0, 0.5])
        if name == "width":
            return self.pick([self.bad_number(1, 64), 0, 0.999])
        if name == "opacity":
            return self.pick([self.bad_number(0.05, 1), 0, -0.0, 0.049])
        if name == "points":
            return self.bad_points(draft)
        if name == "text":  # "" is a note's text, so it is not refused by all
            return self.pick(["x" * 2001, "😀" * 2001, 5, None, ["a"], True])
        if name in {"color", "fill"}:
            bad = ["#12345", "#1234567", "123456", "#GGGGGG", "#12345g", " #123456"]
            bad += [
                "#123456\n",
                "",
                "red",
                0x123456,
                "#ＡＢＣＤＥＦ",
                "#١٢٣٤٥٦",
                [],
                True,
            ]
            return self.pick(bad + ([None] if name == "color" else []))
        if name == "id":
            return self.pick(
                ["", "x" * 65, "a b", "a.b", "é", "a\n", 5, None, [], True]
            )
        if name == "kind":
            return self.pick(["Rect", "circle", "", "image", "Note", 3, None, ["rect"]])
        raise AssertionError(name)

    def bad_points(self, draft: bool) -> Any:
        good = [0, 0]
        roll = self.rng.random()
        if roll < 0.2:
            return self.pick(["", {}, None, 5, True, "[[0,0],[1,1]]"])
        if roll < 0.3:
            return [] if draft else self.pick([[], [good]])
        if roll < 0.35:
            return [good] * (self.limits.max_points + 1)
        pair = self.pick(
            [
                [0],
                [0, 0, 0],
                [],
                [True, 0],
                [0, False],
                ["1", 0],
                [None, 0],
                [Raw("1e400"), 0],
                [COORD + 1, 0],
                [0, -COORD - 0.5],
                [[0], [0]],
                {"x": 0, "y": 0},
                nested(30),
                "0,0",
                None,
            ]
        )
        points = [good] * self.rng.randint(1, 5)
        points.insert(self.rng.randrange(len(points) + 1), pair)
        return points

    def bad_element(self, draft: bool):
        """An element with one defect, and what the defect is."""
        if self.chance(0.05):
            values = [[], "x", 5, True] + ([] if draft else [None])
            return self.pick(values), "not-an-object"
        sent, stored = self.element(draft=draft)
        kind = stored["kind"]
        roll = self.rng.random()
        if roll < 0.45:
            names = ["id", "kind", "x", "y", *KIND_FIELDS[kind], *KIND_STYLE[kind]]
            name = self.pick(names)
            sent[name] = self.bad_value(name, draft, kind)
            return sent, f"bad-{name}"
        if roll < 0.65:
            name = self.pick(
                ["id", "kind", "x", "y", *KIND_FIELDS[kind], *REQUIRED[kind]]
            )
            del sent[name]
            return sent, f"missing-{name}"
        if roll < 0.85:
            name = self.pick(_foreign(kind))
            sent[name] = self.kind_value(name)
            return sent, f"foreign-{name}-on-{kind}"
        name = self.pick(
            ["z", "rotation", "V", "ID", "", "type", "cid", "x" * 10_000, "é"]
        )
        sent[name] = self.pick([1, None, "x", [], nested(20)])
        return sent, "unknown-field"

    def invalid_add(self) -> Case:
        cid = self.new_cid()
        element, defect = self.bad_element(draft=False)
        frame = {"type": "add", "cid": cid, "element": element}
        return self.refused_op(f"add/{defect}", frame, "bad_message")

    def refused_op(self, label: str, frame: dict, code: str) -> Case:
        """An op with a fresh valid cid, refused after its batch is committed."""
        return self.case(label, frame, error(code, frame["cid"], deferred=True))

    def invalid_draft(self) -> Case:
        element, defect = self.bad_element(draft=True)
        frame = {"type": "draft", "element": element}
        return self.case(f"draft/{defect}", frame, error("bad_message"))

    def invalid_update(self) -> Case:
        element = self.live_element()
        cid = self.new_cid()
        eid = element["id"] if element else self.new_id()
        kind = element["kind"] if element else self.pick(KINDS)
        changes = self.valid_set(kind)
        roll = self.rng.random()
        code = "bad_message"
        if roll < 0.15:
            changes, label = (
                self.pick([[], {}, None, "x", 5, [["x", 1]]]),
                "set-not-object",
            )
        elif roll < 0.3:
            name = self.pick(["id", "kind", "v", "by"])
            changes[name] = self.pick([eid, kind, 5, "x"])
            label = f"set-{name}"
        elif roll < 0.4:
            changes[self.pick(["z", "", "ID", "points2", "x" * 5000])] = 1
            label = "set-unknown"
        elif roll < 0.7:
            name = self.pick(list(changes))
            changes[name] = self.bad_value(name, kind=kind if element else "")
            label = f"set-bad-{name}"
        elif roll < 0.85:
            name = self.pick(_foreign(kind))
            changes[name] = self.kind_value(name)
            label = f"set-foreign-{name}-on-{kind}"
            code = "bad_message" if element else "not_found"
        else:
            eid = self.bad_value("id")
            label = "bad-id"
        frame = {"type": "update", "cid": cid, "id": eid, "set": changes}
        if element is None and code == "bad_message" and label != "bad-id":
            label += "/no-element"  # field errors come before not_found
        return self.refused_op(f"update/{label}", frame, code)

    def invalid_delete(self) -> Case:
        cid = self.new_cid()
        most = self.limits.max_elements
        roll = self.rng.random()
        code = "bad_message"
        if roll < 0.2:
            ids, label = (
                self.pick([None, "a", {}, 5, [], {"ids": ["a"]}]),
                "ids-not-list",
            )
        elif roll < 0.4:
            ids = [self.new_id() for _ in range(self.rng.randint(0, 3))]
            ids.insert(self.rng.randrange(len(ids) + 1), self.bad_value("id"))
            label = "bad-id"
        elif roll < 0.42:  # the large frames are rare: they take the most time
            ids, label = ["a"] * (most + 1), "too-many-ids"
        elif roll < 0.44:
            ids = self.distinct_unknown_ids(1) * most
            label, code = "max-ids-all-missing", "not_found"
        elif roll < 0.45:
            ids, code = self.distinct_unknown_ids(min(most, 30_000)), "not_found"
            label = "many-distinct-missing"
        else:
            tombs = sorted(self.board.tombs)
            ids = [self.new_id() for _ in range(self.rng.randint(1, 4))]
            ids += self.rng.sample(tombs, min(len(tombs), 3))
            label, code = "all-missing", "not_found"
        frame = {"type": "delete", "cid": cid, "ids": ids}
        return self.refused_op(f"delete/{label}", frame, code)

    def distinct_unknown_ids(self, n: int) -> list:
        ids, k = [], 0
        while len(ids) < n:
            k += 1
            eid = _short_id(k)
            if eid not in self.board.used and eid not in self.burnt:
                ids.append(eid)
        return ids

    def state_error(self) -> Case:
        cid = self.new_cid()
        used = sorted(self.board.used - self.burnt)
        if used and self.chance(0.5):
            sent, _ = self.element()
            sent["id"] = self.pick(used)
            frame = {"type": "add", "cid": cid, "element": sent}
            return self.refused_op("add/exists", frame, "exists")
        gone = sorted(self.board.tombs) or [self.new_id()]
        eid = self.pick(gone)
        frame = {"type": "update", "cid": cid, "id": eid, "set": self.valid_set("rect")}
        return self.refused_op("update/not_found", frame, "not_found")

    # -- invalid envelopes -------------------------------------------------------------

    def base_frame(self) -> dict:
        """Some valid-looking frame to spoil."""
        maker = self.pick(
            [
                lambda: {
                    "type": "add",
                    "cid": self.new_cid(),
                    "element": self.element()[0],
                },
                lambda: {"type": "delete", "cid": self.new_cid(), "ids": ["a"]},
                lambda: {"type": "clear", "cid": self.new_cid()},
                lambda: {"type": "cursor", "x": 1, "y": 2},
                lambda: {"type": "viewport", "x": 1, "y": 2, "w": 3, "h": 4},
                lambda: {"type": "ping", "t": 1},
            ]
        )
        return maker()

    def invalid_envelope(self) -> Case:
        roll = self.rng.random()
        frame = self.base_frame()
        cid = frame.get("cid")
        if roll < 0.15:
            del frame["type"]
            return self.case("type/missing", frame, error("bad_message", cid))
        if roll < 0.3:
            frame["type"] = self.pick([1, None, ["add"], {"a": 1}, True, 0.5])
            return self.case("type/not-string", frame, error("bad_message", cid))
        if roll < 0.45:
            frame["type"] = self.pick(
                [
                    "Add",
                    "ADD",
                    "add ",
                    "",
                    "welcome",
                    "ops",
                    "pong",
                    "error",
                    "snapshot",
                    "board.ops",
                    "board_ops",
                    "websocket.receive",
                    "websocket.disconnect",
                    "handle_op",
                    "__class__",
                    "viewports",
                    "Viewport",
                    "ack",
                    "x" * 10_000,
                    "ping\u0000",
                ]
            )
            if self.chance(0.3):
                frame["cid"] = cid = self.pick(
                    [5, "short", "bad cid!!", self.new_cid()]
                )
            return self.case("type/unknown", frame, error("unknown_type", cid))
        if roll < 0.65:
            op = self.pick(OP_TYPES)
            frame = {
                "type": op,
                "cid": self.pick(
                    [
                        5,
                        None,
                        [],
                        True,
                        "abcdefg",
                        "x" * 65,
                        "abc def gh",
                        "abcdefgh\n",
                        "abcdéfgh",
                        "",
                        "abcdefgh.",
                        {"cid": "abcdefghij"},
                    ]
                ),
            }
            if self.chance(0.3):
                del frame["cid"]
            if op in {"add", "update", "delete"} and self.chance(0.5):
                frame.update(
                    {
                        "add": {"element": 5},
                        "update": {"id": 5, "set": 5},
                        "delete": {"ids": 5},
                    }[op]
                )
            return self.case(
                f"{op}/bad-cid", frame, error("bad_message", frame.get("cid"))
            )
        if roll < 0.8:
            op = self.pick(["add", "update", "delete", "clear", "undo", "redo"])
            cid = self.new_cid()
            frame = {"type": op, "cid": cid}
            frame.update(self.required_fields(op))
            frame[
                self.pick(["v", "seq", "sid", "by", "Type", "element2", "", "ids2"])
            ] = 1
            return self.refused_op(f"{op}/extra-field", frame, "bad_message")
        if roll < 0.9:
            op = self.pick(["add", "update", "delete"])
            frame = {"type": op, "cid": self.new_cid(), **self.required_fields(op)}
            del frame[self.pick([k for k in frame if k not in {"type", "cid"}])]
            return self.refused_op(f"{op}/missing-field", frame, "bad_message")
        if roll < 0.95:
            return self.invalid_viewport()
        return self.invalid_volatile()

    def invalid_viewport(self) -> Case:
        frame = {"type": "viewport", "x": 1, "y": 2, "w": 300, "h": 200}
        defect = self.pick(["extra", "cid", "missing", "bad-xy", "bad-size"])
        if defect == "extra":
            frame[self.pick(["z", "sid", "", "zoom", "type2", "W"])] = 1
        elif defect == "cid":
            frame["cid"] = self.pick([self.new_cid(), "x", 5])
        elif defect == "missing":
            del frame[self.pick(["x", "y", "w", "h"])]
        elif defect == "bad-xy":
            frame[self.pick(["x", "y"])] = self.bad_number(-COORD, COORD)
        else:
            frame[self.pick(["w", "h"])] = self.pick(
                [0, -0.0, -1, self.bad_number(5e-324, COORD)]
            )
        return self.case(
            f"viewport/{defect}",
            self.shuffled(frame),
            error("bad_message", frame.get("cid")),
        )

    def required_fields(self, op: str) -> dict:
        if op == "add":
            return {"element": self.element()[0]}
        if op == "update":
            return {"id": "a", "set": {"x": 1}}
        if op == "delete":
            return {"ids": ["a"]}
        return {}

    def invalid_volatile(self) -> Case:
        roll = self.rng.random()
        if roll < 0.4:
            frame = {"type": "cursor", "x": 1, "y": 2}
            defect = self.pick(["extra", "cid", "missing", "bad"])
            if defect == "extra":
                frame[self.pick(["z", "sid", "", "type2"])] = 1
            elif defect == "cid":
                frame["cid"] = self.pick([self.new_cid(), "x", 5])
            elif defect == "missing":
                del frame[self.pick(["x", "y"])]
            else:
                frame[self.pick(["x", "y"])] = self.bad_number(-COORD, COORD)
            return self.case(
                f"cursor/{defect}", frame, error("bad_message", frame.get("cid"))
            )
        if roll < 0.6:
            frame = {"type": "draft", "element": self.element(draft=True)[0]}
            defect = self.pick(["extra", "cid", "missing"])
            if defect == "extra":
                frame["z"] = 1
            elif defect == "cid":
                frame["cid"] = self.pick([self.new_cid(), "x", 5])
            else:
                del frame["element"]
            return self.case(
                f"draft/{defect}", frame, error("bad_message", frame.get("cid"))
            )
        extra = {"t": 1}
        if self.chance(0.4):
            extra["cid"] = self.pick([self.new_cid(), "x", 5])
        if self.chance(0.5):
            extra[self.pick(["a", "t", "n"])] = self.pick(
                [Raw("1e400"), Raw("-1e999"), [1, Raw("1e400")], {"a": Raw("1e400")}]
            )
            label = "ping/infinite"
        else:
            extra["deep"] = nested(self.pick([PING_MAX_DEPTH, 100, 500, 800]))
            label = "ping/too-deep"
        return self.case(
            label, {"type": "ping", **extra}, error("bad_message", extra.get("cid"))
        )

    # -- text that is not a JSON object ------------------------------------------------

    def bad_json(self) -> Case:
        roll = self.rng.random()
        if roll < 0.2:
            text = dump(self.base_frame())
            return Case(
                "json/truncated",
                text[: self.rng.randrange(len(text))],
                error("bad_json"),
            )
        if roll < 0.3:
            text = dump(self.base_frame()) + self.pick(
                ["x", ",", "}", "]", "{}", "null", '"a"']
            )
            return Case("json/trailing", text, error("bad_json"))
        if roll < 0.45:
            frame = self.base_frame()
            self.plant(
                frame,
                Raw(
                    self.pick(
                        [
                            "NaN",
                            "Infinity",
                            "-Infinity",
                            "nan",
                            "+1",
                            "01",
                            ".5",
                            "1.",
                            "0x10",
                            "1e",
                            "'a'",
                            "tru",
                            '"\\x41"',
                            '"a\nb"',
                            '"\t"',
                        ]
                    )
                ),
            )
            return Case("json/bad-literal", dump(frame), error("bad_json"))
        if roll < 0.55:
            text = self.pick(
                [
                    "[]",
                    "1",
                    '"ping"',
                    "null",
                    "true",
                    '[{"type":"ping"}]',
                    "",
                    "   ",
                    "\ufeff{}",
                    "\ufeff" + dump(self.base_frame()),
                    "{",
                    "}",
                ]
            )
            return Case("json/not-an-object", text, error("bad_json"))
        if roll < 0.65:
            depth = self.pick([1100, 1500, 5000, 5000, 20_000, 100_000])
            text = self.pick(
                [
                    "[" * depth,
                    dump({"type": "ping", "a": nested(depth)}),
                    '{"a":' * depth + "1" + "}" * depth,
                ]
            )
            return Case("json/too-deep", text, error("bad_json"))
        if roll < 0.75:
            frame = self.base_frame()
            self.plant(
                frame,
                Raw(
                    self.pick(["-", ""]) + "9" * self.rng.randint(INT_DIGITS + 1, 6000)
                ),
            )
            return Case("json/huge-int", dump(frame), error("bad_json"))
        return self.surrogate()

    def edge_depth(self) -> Case:
        """Nesting near the decoder's recursion limit, with and without a \\u
        escape: bad_json when it does not decode, bad_message when it does (the
        ping nests too deep to echo, the cursor has an unknown field)."""
        depth = self.rng.randint(900, 1000)
        escape = self.pick(['"s":"\\u0041",', ""])
        head = self.pick(
            [
                '{"type":"ping",',
                '{"type":"cursor","x":1,"y":2,',
                '{"type":"viewport","x":1,"y":2,"w":3,"h":4,',
            ]
        )
        text = f'{head}{escape}"deep":{nested(depth).text}}}'
        return Case("json/edge-depth", text, error(("bad_json", "bad_message")))

    def plant(self, frame: dict, value: Any) -> None:
        """Put `value` somewhere in `frame`: a field, or deep inside one."""
        spots = [frame]
        element = frame.get("element")
        if isinstance(element, dict):
            spots.append(element)
            if isinstance(element.get("points"), list):
                spots.append(element["points"][0])
        spot = self.pick(spots)
        if isinstance(spot, list):
            spot[self.rng.randrange(len(spot))] = value
        else:
            spot[self.pick([k for k in spot if k != "type"] + ["zz"])] = value

    def surrogate(self) -> Case:
        """A lone UTF-16 surrogate escape anywhere: bad_json, cid echoed if clean."""
        frame = self.base_frame()
        lone = self.pick(
            ["\\ud800", "\\udfff", "a\\udbff", "\\udc00\\ud800", "\\ud83d"]
        )
        where = self.rng.random()
        if where < 0.2 and "cid" in frame:
            frame["cid"] = Raw(f'"abcdefgh{lone}"')
            return Case("json/surrogate-in-cid", dump(frame), error("bad_json"))
        if where < 0.4:
            pairs = Pairs([*frame.items(), (Raw(f'"{lone}"'), 1)])
            return Case(
                "json/surrogate-key", dump(pairs), error("bad_json", frame.get("cid"))
            )
        self.plant(frame, Raw(f'"x{lone}y"'))
        return Case("json/surrogate", dump(frame), error("bad_json", frame.get("cid")))

    def binary(self) -> Case:
        payload = self.pick(
            [b"", b"\x00\xff", dump(self.base_frame()).encode(), bytes(range(256)) * 4]
        )
        return self.sized(Case("binary", payload, error("bad_message"), frame="binary"))

    def not_utf8(self) -> Case:
        """A text frame that is not UTF-8: daphne (autobahn) drops the connection."""
        payload = self.pick([b"\xff", b'{"type":"ping","a":"\xed\xa0\x80"}', b"\xc3("])
        return Case(
            "text-not-utf8",
            payload,
            Expect("close", close=(None, 1006, 1007)),
            frame="raw-text",
        )

    def near_limit(self) -> Case:
        """A ping of exactly max_frame_bytes (answered), or one byte more (1009)."""
        over = self.chance(0.5)
        size = self.limits.max_frame_bytes + (1 if over else 0)
        head = '{"type":"ping","pad":"'
        room = size - len(head) - 2
        fill = self.pick(["a", "é", "€", "😀"])
        width = len(fill.encode())
        pad = fill * (room // width) + "b" * (room % width)
        text = head + pad + '"}'
        assert len(text.encode()) == size
        expect = Expect("pong", extra={"pad": pad})
        return self.sized(Case(f"ping/{size}-bytes", text, expect))

    # -- the mix ----------------------------------------------------------------

    def next_case(self) -> Case:
        makers = [
            (14, self.valid_add),
            (8, self.valid_update),
            (4, self.valid_delete),
            (0.3, self.valid_clear),
            (2, self.resend),
            (7, self.valid_ping),
            (3, self.valid_cursor),
            (3, self.valid_viewport),
            (3, self.valid_draft),
            (10, self.invalid_add),
            (6, self.invalid_draft),
            (8, self.invalid_update),
            (4, self.invalid_delete),
            (3, self.state_error),
            (10, self.invalid_envelope),
            (9, self.bad_json),
            (0.5, self.edge_depth),
            (1, self.binary),
            (0.05, self.near_limit),
            (0.1, self.not_utf8),
        ]
        weights = [w for w, _ in makers]
        maker = self.rng.choices([m for _, m in makers], weights)[0]
        return self.sized(maker())


def _foreign(kind: str) -> list:
    """The fields an element of `kind` does not have: other kinds' own fields,
    and the style fields it lacks (a note's width)."""
    others = {f for k in KINDS for f in (*KIND_FIELDS[k], *KIND_STYLE[k])}
    return sorted(others - {*KIND_FIELDS[kind], *KIND_STYLE[kind]})


def _short_id(k: int) -> str:
    """The k-th id of the shortest ones: "A".."-", then two characters, and so on."""
    out = ""
    while k > 0:
        k, digit = divmod(k - 1, len(ID_CHARS))
        out = ID_CHARS[digit] + out
    return out


def _plain(data: Any) -> bool:
    """True if the standard encoder can write `data` as it is (no Raw, no Pairs)."""
    if isinstance(data, Raw | Pairs):
        return False
    if type(data) is dict:
        return all(map(_plain, data.values()))
    if type(data) is list:
        return all(map(_plain, data))
    return True
