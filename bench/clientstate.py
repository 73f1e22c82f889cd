"""What the load generator's clients know: per-client state, the worker's tally,
and the frames they send (the op's cid carries its sender and send time).

Kept apart from worker.py, which holds the asyncio side: connecting, sending on
schedule, reading and checking frames.
"""

from __future__ import annotations

import json
import math
from array import array
from collections import Counter
from dataclasses import dataclass, field

from scenario import LoadConfig
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import WebSocketException

MAX_NOTES = 20
ENTRY_FIELDS = frozenset({"op", "seq", "cid", "sid", "by", "element"})
WELCOME_FIELDS = frozenset({"protocol", "board", "you", "users", "seq", "limits"})
# A stroke about as long as a quick pen gesture: 20 points, relative to x, y.
POINTS = [[i * 4, round(8 * math.sin(i / 3), 1)] for i in range(20)]


@dataclass
class Client:
    """One simulated user: its socket and what it has seen of the board."""

    index: int
    seen: bytearray
    board: int = 0
    ws: ClientConnection | None = None
    last_seq: int | None = None
    limits: dict = field(default_factory=dict)
    seen_count: int = 0
    duplicates: int = 0
    sent: int = 0
    refused: int = 0
    seq_gaps: int = 0
    seq_backwards: int = 0
    seq_missing: int = 0
    closing: bool = False
    closed: str | None = None

    @property
    def seq_ok(self) -> bool:
        return not (self.seq_gaps or self.seq_backwards or self.seq_missing)

    def outcome(self) -> dict:
        return {
            "index": self.index,
            "board": self.board,
            "connected": self.ws is not None,
            "seen": self.seen_count,
            "duplicates": self.duplicates,
            "sent": self.sent,
            "refused": self.refused,
            "seq_ok": self.seq_ok,
            "seq_gaps": self.seq_gaps,
            "seq_backwards": self.seq_backwards,
            "seq_missing": self.seq_missing,
            "closed": self.closed,
            "limits": self.limits,
        }


@dataclass
class Tally:
    """Everything one worker measured, shipped whole to the parent at the end."""

    others: array = field(default_factory=lambda: array("q"))
    others_at: array = field(default_factory=lambda: array("H"))
    echo: array = field(default_factory=lambda: array("q"))
    pong: array = field(default_factory=lambda: array("q"))
    send_lag: array = field(default_factory=lambda: array("q"))
    errors: Counter = field(default_factory=Counter)
    frames: Counter = field(default_factory=Counter)
    notes: Counter = field(default_factory=Counter)
    last_delivery: int = 0
    cpu_s: float = 0.0
    clients: list = field(default_factory=list)
    union: bytes = b""

    def note(self, text: str) -> None:
        """Remember a protocol deviation; the first few kinds verbatim, then counts."""
        if text in self.notes or len(self.notes) < MAX_NOTES:
            self.notes[text] += 1
        else:
            self.notes["(other deviations)"] += 1


class JoinError(WebSocketException):
    """The server did not admit the client the way the protocol says it should."""


def parse_cid(cid: object, token: str) -> tuple[int, int, int] | None:
    """(client, op number, send time ns) of one of this run's cids, else None."""
    if not isinstance(cid, str):
        return None
    parts = cid.split("-")
    if len(parts) != 4 or parts[0] != "c" + token:
        return None
    try:
        return int(parts[1]), int(parts[2]), int(parts[3])
    except ValueError:
        return None


def element_id(cfg: LoadConfig, client: int, n: int) -> str:
    return f"e{cfg.token}-{client}-{n}"


def add_frame(cfg: LoadConfig, client: int, n: int, now_ns: int) -> str:
    """The `add` a client sends as op `n`: a stroke whose cid carries its send time."""
    element = {
        "id": element_id(cfg, client, n),
        "kind": "stroke",
        "x": 40 * (client % 25),
        "y": 30 * (n % 30),
        "points": POINTS,
        "color": "#1e88e5",
        "width": 3,
    }
    cid = f"c{cfg.token}-{client}-{n}-{now_ns}"
    return json.dumps({"type": "add", "cid": cid, "element": element})
