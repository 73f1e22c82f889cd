"""How long the JSON work of one op takes with each encoder the server could use.

The server decodes every incoming frame once and encodes each committed op
twice (the element body it stores, the op entry it logs and broadcasts); the
frame a batch broadcasts is joined from those texts, never re-encoded. This
times exactly those three steps on the bench's own `add` (a 20-point stroke)
with the standard library (as configured in whiteboard/protocol.py and
changes.py), ujson and orjson, in process CPU time, median of 7 rounds.

    .venv/bin/python bench/json_choices.py
"""

from __future__ import annotations

import json
import statistics
import time

from clientstate import POINTS

ROUNDS, N = 7, 20_000
FRAME = json.dumps(
    {
        "type": "add",
        "cid": "c4f2a1-17-42-1764166000000000000",
        "element": {
            "id": "e4f2a1-17-42",
            "kind": "stroke",
            "x": 40,
            "y": 30,
            "points": POINTS,
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


def per_op_us(loads, dumps) -> float:
    """CPU microseconds for: decode the frame, encode the body, encode the entry."""
    rounds = []
    for _ in range(ROUNDS):
        began = time.process_time()
        for seq in range(N):
            msg = loads(FRAME)
            element = msg["element"]
            dumps(element)
            entry = {"op": "add", "seq": seq, "cid": msg["cid"], "sid": "s1"}
            dumps([{**entry, "by": "Quick Otter", "element": element}])
        rounds.append(time.process_time() - began)
    return statistics.median(rounds) / N * 1e6


def main() -> None:
    print("| encoder | CPU per op (decode + 2 encodes), us | vs stdlib |")
    print("|---|---:|---:|")
    base = None
    for name, make in (
        ("json (stdlib)", stdlib),
        ("ujson", ujson_pair),
        ("orjson", orjson_pair),
    ):
        try:
            loads, dumps = make()
        except ImportError:
            print(f"| {name} | not installed | |")
            continue
        us = per_op_us(loads, dumps)
        base = base or us
        print(f"| {name} | {us:.1f} | {us / base:.2f} |")


if __name__ == "__main__":
    main()
