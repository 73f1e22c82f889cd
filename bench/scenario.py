"""What one run of the load generator is, and how its processes meet.

Shared by the parent (loadgen.py) and the workers (worker.py): the scenario is
fixed before any process starts, and the barriers between them are plain shared
counters, so neither side ever blocks on the other.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field


@dataclass(frozen=True)
class LoadConfig:
    """One scenario: who connects where, how fast they send, and for how long."""

    url: str
    origin: str
    # Client i joins board i % boards: urls[i % boards] (one board: urls is (url,)).
    urls: tuple[str, ...] = ()
    clients: int = 50
    rate: float = 10.0
    duration: float = 20.0
    procs: int = 2
    drain: float = 10.0
    ping_every: float = 5.0
    connect_timeout: float = 30.0
    token: str = field(default_factory=lambda: secrets.token_hex(3))

    @property
    def ops_per_client(self) -> int:
        return max(1, round(self.rate * self.duration))

    @property
    def boards(self) -> int:
        return max(1, len(self.urls))

    def url_of(self, client: int) -> str:
        return self.urls[client % len(self.urls)] if self.urls else self.url


class Shared:
    """Cross-process counters and flags: the parent sets them, workers poll them.

    Values rather than pipes for the barriers, so a worker's event loop never blocks
    on the parent; it just looks at a number every few milliseconds.
    """

    def __init__(self, ctx, boards: int = 1) -> None:
        # Per board: ops sent and refused, so each client knows what it awaits.
        self.board_sent = ctx.Array("q", boards)
        self.board_refused = ctx.Array("q", boards)
        self.connected = ctx.Value("i", 0)
        self.failed = ctx.Value("i", 0)
        self.start_at = ctx.Value("q", 0)
        self.senders_done = ctx.Value("i", 0)
        self.sent = ctx.Value("q", 0)
        self.refused = ctx.Value("q", 0)
        self.drained = ctx.Value("i", 0)
        self.release = ctx.Event()

    @staticmethod
    def add(value, amount: int = 1) -> None:
        with value.get_lock():
            value.value += amount

    @staticmethod
    def add_at(array, index: int, amount: int = 1) -> None:
        with array.get_lock():
            array[index] += amount
