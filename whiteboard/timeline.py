"""A board's history: its state at any seq, checkpoints, and compaction.

The log (Op rows, each holding the broadcast entries of its seqs) is the
truth: the state right after seq S is the state at the newest checkpoint at or
before S, with the entries after it up to S applied in order, exactly as a
client applies them (`State.apply`). Every WHITEBOARD_CHECKPOINT_OPS seqs a
checkpoint is stored, so that no state costs more than that many entries.

A checkpoint is itself computed from the log (the previous checkpoint plus the
entries since), never read from the live element rows: the log up to a seq is
immutable, so it needs no lock and cannot catch a commit half-way.

Compaction (WHITEBOARD_HISTORY_DAYS, `manage.py compacthistory`) drops the ops
older than a date: it stores a checkpoint at the last of them, deletes them
and the older checkpoints, and moves the board's `history_from` there. The
board's current state (its element rows) is untouched; undo reaches back as far
as the log does; a client resuming from before it gets a snapshot, as for any
`since` the log cannot replay.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import orjson
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from .models import Board, Checkpoint, Op

logger = logging.getLogger(__name__)

Element = dict[str, Any]


class OutOfHistory(Exception):
    """No state can be given for this seq: after the board's, or before the
    history it keeps. `status` is the HTTP answer (404)."""

    status = 404


@dataclass
class State:
    """Every element a board ever had as of `seq`: live ones with their
    fields, deleted ones by their place only (an undo brings one back there)."""

    seq: int = 0
    # id -> [z, element dict with "v", or None once deleted]
    elements: dict[str, list[Any]] = field(default_factory=dict)

    def apply(self, entry: dict[str, Any]) -> None:
        """One broadcast op entry, as a client applies it."""
        op, seq = entry["op"], entry["seq"]
        if op == "add":
            element = entry["element"]
            known = self.elements.get(element["id"])
            z = known[0] if known is not None else seq
            self.elements[element["id"]] = [z, dict(element)]
        elif op == "update":
            known = self.elements.get(entry["id"])
            if known is not None and known[1] is not None:
                known[1].update(entry["set"])
                known[1]["v"] = seq
        elif op == "delete":
            for element_id in entry["ids"]:
                known = self.elements.get(element_id)
                if known is not None:
                    known[1] = None
        elif op == "clear":
            for known in self.elements.values():
                known[1] = None
        self.seq = seq

    def apply_all(self, entries: Iterable[dict[str, Any]], upto: int) -> None:
        for entry in entries:
            if self.seq < entry["seq"] <= upto:
                self.apply(entry)

    def live(self) -> list[Element]:
        """The live elements in stacking order, bottom first, as a snapshot
        gives them."""
        found = [(z, e) for z, e in self.elements.values() if e is not None]
        found.sort(key=lambda pair: pair[0])
        return [element for _, element in found]

    def ids_live(self) -> set[str]:
        return {i for i, (_, e) in self.elements.items() if e is not None}

    # -- stored as a checkpoint ---------------------------------------------------

    def dumps(self) -> str:
        live = [[z, e] for z, e in self.elements.values() if e is not None]
        gone = [[z, i] for i, (z, e) in self.elements.items() if e is None]
        live.sort(key=lambda pair: pair[0])
        return orjson.dumps({"live": live, "gone": gone}).decode()

    @classmethod
    def loads(cls, seq: int, text: str) -> State:
        data = orjson.loads(text)
        elements: dict[str, list[Any]] = {}
        for z, element in data["live"]:
            elements[element["id"]] = [z, element]
        for z, element_id in data["gone"]:
            elements[element_id] = [z, None]
        return cls(seq, elements)


def entries_between(board_id: int, after: int, upto: int) -> Iterator[dict]:
    """The log's entries with after < seq <= upto, in seq order, read a chunk
    of rows at a time."""
    ops = (
        Op.objects.filter(board_id=board_id, last_seq__gt=after, seq__lte=upto)
        .order_by("seq")
        .values_list("entries", flat=True)
    )
    for text in ops.iterator(chunk_size=500):
        yield from orjson.loads(text)


def state_at(board: Board, seq: int) -> State:
    """The board right after op `seq`, from the newest checkpoint at or before
    it and the log since. OutOfHistory past the board's seq or before the
    history it keeps."""
    if seq < 0 or seq > board.seq:
        raise OutOfHistory(
            f"Seq {seq} is not on this board: its history runs to {board.seq}."
        )
    if seq < board.history_from:
        raise OutOfHistory(
            f"The history of this board before seq {board.history_from} was "
            "dropped (WHITEBOARD_HISTORY_DAYS)."
        )
    checkpoint = (
        Checkpoint.objects.filter(board=board, seq__lte=seq)
        .order_by("-seq")
        .values_list("seq", "state")
        .first()
    )
    state = State() if checkpoint is None else State.loads(*checkpoint)
    state.apply_all(entries_between(board.pk, state.seq, seq), seq)
    state.seq = seq
    return state


# -- checkpoints -------------------------------------------------------------------


def checkpoint_every() -> int:
    return int(settings.WHITEBOARD_CHECKPOINT_OPS)


def crossed(before: int, after: int) -> bool:
    """Whether seqs before..after passed a multiple of the checkpoint spacing."""
    every = checkpoint_every()
    return every > 0 and before // every < after // every


def ensure_checkpoint(board_id: int) -> int | None:
    """Store a checkpoint at the board's seq if the newest one is
    WHITEBOARD_CHECKPOINT_OPS seqs or more behind; its seq, or None."""
    every = checkpoint_every()
    board = Board.objects.filter(pk=board_id).only("pk", "seq", "history_from").first()
    if every <= 0 or board is None:
        return None
    newest = (
        Checkpoint.objects.filter(board_id=board_id)
        .order_by("-seq")
        .values_list("seq", flat=True)
        .first()
    )
    if board.seq - max(newest or 0, board.history_from) < every:
        return None
    return store_checkpoint(board, board.seq)


def store_checkpoint(board: Board, seq: int) -> int:
    """A checkpoint at `seq`, computed from the log; one already there is kept."""
    state = state_at(board, seq)
    try:
        with transaction.atomic():
            Checkpoint.objects.create(board_id=board.pk, seq=seq, state=state.dumps())
    except IntegrityError:  # another process stored the same one
        pass
    return seq


# -- compaction -----------------------------------------------------------------------


def last_seq_at(board: Board, moment: datetime) -> int:
    """The last seq committed at or before `moment`, or history_from.

    A binary search over seqs, one indexed look per step (an op's created_at
    grows with its seq on a board: it is stamped inside the commit that locks
    the board): about 17 queries for 100,000 ops, never a scan of the log.
    """
    ops = Op.objects.filter(board=board).values_list("seq", "last_seq", "created_at")

    def at_or_below(seq: int) -> tuple[int, int, datetime] | None:
        return ops.filter(seq__lte=seq).order_by("-seq").first()

    newest = at_or_below(board.seq)
    if newest is None:
        return board.history_from
    if newest[2] <= moment:
        return newest[1]
    # Below newest's first seq: the highest op at or before the moment.
    low, high, found = board.history_from, newest[0] - 1, board.history_from
    while low <= high:
        mid = (low + high) // 2
        op = at_or_below(mid)
        if op is None or op[0] <= board.history_from:
            low = mid + 1
            continue
        if op[2] <= moment:
            found = op[1]
            low = op[0] + 1
        else:
            high = op[0] - 1
    return found


def compact(board: Board, before: datetime) -> int:
    """Drop the ops of `board` created before `before`, keeping a checkpoint at
    the last of them; return the number of ops dropped."""
    cut = last_seq_at(board, before)
    if cut <= board.history_from:
        return 0
    store_checkpoint(board, cut)
    with transaction.atomic():
        locked = Board.objects.select_for_update().get(pk=board.pk)
        if cut <= locked.history_from:  # another process did it meanwhile
            return 0
        dropped, _ = Op.objects.filter(board=locked, last_seq__lte=cut).delete()
        Checkpoint.objects.filter(board=locked, seq__lt=cut).delete()
        Board.objects.filter(pk=locked.pk).update(history_from=cut)
    board.history_from = cut
    logger.info(
        "Compacted board %s: %d ops up to seq %d dropped", board.slug, dropped, cut
    )
    return dropped


def compact_all(before: datetime, boards: Iterable[Board] | None = None) -> int:
    """Compact every board (or `boards`) whose oldest kept op is older than
    `before`; one cheap indexed look per board."""
    total = 0
    for board in boards if boards is not None else Board.objects.iterator():
        oldest = (
            Op.objects.filter(board=board, seq__gt=board.history_from)
            .order_by("seq")
            .values_list("created_at", flat=True)
            .first()
        )
        if oldest is not None and oldest < before:
            total += compact(board, before)
    return total


def compact_old() -> int:
    """Drop what WHITEBOARD_HISTORY_DAYS says is too old, on every board
    (each server process does it every hour; see realtime/process.py)."""
    days = settings.WHITEBOARD_HISTORY_DAYS
    if not days:
        return 0
    return compact_all(timezone.now() - timedelta(days=days))
