"""How long the JSON work of one op takes with each encoder the server could use.

The server decodes every incoming frame once and encodes each committed op
twice (the element body it stores, the op entry it logs and broadcasts); the
frame a batch broadcasts is joined from those texts, never re-encoded. This
times exactly those three steps on the bench's own `add` (a 20-point stroke,
and a 1,000-point one) in process CPU time, median of 9 rounds taken in
turns:

- the libraries alone: the standard library, ujson and orjson;
- the protocol's own functions: `validation._decode` and `frames.encode` as
  they are now (orjson, with the checks that keep the standard library's
  answers: docs/performance.md, "Encoding with orjson"), against the
  standard library alone, as they were before issue 11.

The body and entry hold `"fill": null`, as every normalized element without a
fill does: `frames.encode` then counts the Nones to rule out NaN.

    .venv/bin/python bench/json_choices.py
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

from clientstate import POINTS

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

ROUNDS = 9
STROKES = {20: 20_000, 1000: 500}  # points per stroke: ops per round


def add_frame(points: list) -> str:
    return json.dumps(
        {
            "type": "add",
            "cid": "c4f2a1-17-42-1764166000000000000",
            "element": {
                "id": "e4f2a1-17-42",
                "kind": "stroke",
                "x": 40,
                "y": 30,
                "points": points,
                "color": "#1e88e5",
                "width": 3,
            },
        }
    )


def stdlib():
    decoder = json.JSONDecoder()

    def dumps(value):
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)

    return decoder.decode, dumps


def ujson_pair():
    import ujson

    def dumps(value):
        return ujson.dumps(value, ensure_ascii=False, escape_forward_slashes=False)

    return ujson.loads, dumps


def orjson_pair():
    import orjson

    return orjson.loads, lambda value: orjson.dumps(value).decode()


def protocol_before():
    """The protocol's decode and encode before issue 11: the standard library."""
    from whiteboard.protocol import frames, validation

    decoder = json.JSONDecoder(parse_constant=validation._reject_constant)

    def decode(text):
        data = decoder.decode(text)
        if "\\u" in text:
            validation._check_unicode(data)
        return data

    return decode, frames._STANDARD.encode


def protocol_now():
    from whiteboard.protocol import frames, validation

    return validation._decode, frames.encode


def one_round(loads, dumps, frame: str, n: int) -> float:
    """CPU seconds for n ops of: decode the frame, encode the body, encode the entry."""
    began = time.process_time()
    for seq in range(n):
        msg = loads(frame)
        element = msg["element"]
        body = {**element, "fill": None, "opacity": 1, "by": "Quick Otter"}
        dumps(body)
        entry = {"op": "add", "seq": seq, "cid": msg["cid"], "sid": "s1"}
        dumps([{**entry, "by": "Quick Otter", "element": {**body, "v": seq}}])
    return time.process_time() - began


def main() -> None:
    frames = {size: add_frame(POINTS * (size // len(POINTS))) for size in STROKES}
    head = " | ".join(f"{size}-point stroke, us | ratio" for size in STROKES)
    print(f"| encoder | {head} |")
    print("|---|" + "---:|---:|" * len(STROKES))
    groups = (
        (("json (stdlib)", stdlib), ("ujson", ujson_pair), ("orjson", orjson_pair)),
        (
            ("protocol before: json (stdlib)", protocol_before),
            ("protocol now: orjson, checked", protocol_now),
        ),
    )
    for group in groups:  # each row against the first of its group
        pairs = {}
        for name, make in group:
            try:
                pairs[name] = make()
            except ImportError:
                print(f"| {name} | not installed | |")
        # The variants take turns round by round, so that a busy neighbour
        # slows them alike; the median round of each is kept.
        rounds: dict[tuple[str, int], list[float]] = {}
        for _ in range(ROUNDS):
            for size, n in STROKES.items():
                for name, (loads, dumps) in pairs.items():
                    took = one_round(loads, dumps, frames[size], n)
                    rounds.setdefault((name, size), []).append(took / n * 1e6)
        base: dict[int, float] = {}
        for name in pairs:
            cells = []
            for size in STROKES:
                us = statistics.median(rounds[name, size])
                base.setdefault(size, us)
                cells.append(f"{us:.1f} | {us / base[size]:.2f}")
            print(f"| {name} | {' | '.join(cells)} |")


if __name__ == "__main__":
    main()
