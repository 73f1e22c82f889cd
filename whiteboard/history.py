"""Undo and redo: finding the author's latest history entry that still has an
effect, and the changes that revert (or re-apply) it.

Only reads; `changes.Batch` applies what is found. The work per request is
bounded, because it runs while the board's write lock is held: entries are read
in chunks of SCAN_CHUNK with one element query per chunk (the rows' state
without their bodies), and at most `limit` entries are scanned.
"""

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import NamedTuple

import orjson

from . import protocol as p
from .models import Board, Element, History, Op

SCAN_CHUNK = 200
# Ids per `IN (...)` list: SQLite allows 32,766 variables in one statement.
IDS_PER_QUERY = 2000


class RowState(NamedTuple):
    """What planning needs of an element row: read for many rows, so plain
    tuples rather than model instances (measured: half of a long scan's CPU)."""

    element_id: str
    deleted: bool
    v: int
    z: int
    field_v: str


@dataclass
class Change:
    """One op entry to produce: `delete` ids, `update` fields, or `add` ids back."""

    op: str
    ids: list = field(default_factory=list)
    fields: dict = field(default_factory=dict)
    versions: dict = field(default_factory=dict)
    # For a restore's entry: the index of the part it reverts or re-applies.
    part: int | None = None


def in_chunks(ids: list, size: int = IDS_PER_QUERY) -> Iterator[list]:
    for start in range(0, len(ids), size):
        yield ids[start : start + size]


RESTORE = "restore"


def named_ids(entry: Op) -> list[str]:
    """The element ids a history entry names."""
    data = orjson.loads(entry.undo)
    if "parts" in data:
        return [i for part in data["parts"] for i in part_ids(part)]
    return [data["id"]] if "id" in data else list(data["ids"])


def part_ids(part: list) -> list[str]:
    """The ids of one part of a restore: ["delete", ids, seq], ["add", id,
    seq] or ["update", id, seq, set, before, before_v]."""
    return list(part[1]) if part[0] == "delete" else [part[1]]


class HistoryScan:
    """One undo or redo request's search through its author's history.

    `known` is the batch's element rows (id -> Element or None), which are
    current; other rows are read as their state only. Entries passed over,
    having nothing left to revert, are collected in `skipped`.
    """

    def __init__(self, board: Board, known: dict, limit: int):
        self.board = board
        self.known = known
        self.limit = limit
        self.states: dict[str, RowState | None] = {}
        self.skipped: list[int] = []
        self.scanned = 0

    def latest(self, actor: str, *, undo: bool) -> tuple[Op, list[Change]] | None:
        """The latest entry with something left to revert (redo: re-apply)."""
        for entry in self.entries(actor, undo=undo):
            changes = self.plan(entry, undo=undo)
            if changes:
                return entry, changes
            self.skipped.append(entry.pk)
        return None

    @property
    def too_long(self) -> bool:
        """Whether the search stopped at its limit rather than at the end."""
        return self.scanned >= self.limit

    def entries(self, actor: str, *, undo: bool) -> Iterator[Op]:
        state = History.DONE if undo else History.UNDONE
        history = Op.objects.filter(board=self.board, actor=actor, history=state)
        history = history.only("pk", "seq", "kind", "undo", "applied_seq")
        history = history.order_by("-seq" if undo else "seq")
        after = None
        while self.scanned < self.limit:
            size = min(SCAN_CHUNK, self.limit - self.scanned)
            page = history
            if after is not None:
                page = history.filter(**{"seq__lt" if undo else "seq__gt": after})
            chunk = list(page[:size])
            self.scanned += len(chunk)
            self.read_states([i for entry in chunk for i in named_ids(entry)])
            yield from chunk
            if len(chunk) < size:
                return
            after = chunk[-1].seq

    def read_states(self, ids: Iterable[str]) -> None:
        """One query for the state of every row the chunk names (no bodies)."""
        missing = list(dict.fromkeys(i for i in ids if self.state_unknown(i)))
        for i in missing:
            self.states[i] = None
        rows = Element.objects.filter(board=self.board).values_list(*RowState._fields)
        for chunk in in_chunks(missing):
            for row in rows.filter(element_id__in=chunk):
                self.states[row[0]] = RowState(*row)

    def state_unknown(self, element_id: str) -> bool:
        return element_id not in self.known and element_id not in self.states

    def state(self, element_id: str) -> Element | RowState | None:
        if element_id in self.known:
            return self.known[element_id]
        return self.states[element_id]

    def live(self, element_id: str) -> Element | RowState | None:
        row = self.state(element_id)
        return row if row is not None and not row.deleted else None

    # -- what an entry's undo (or redo) changes -----------------------------------

    def plan(self, entry: Op, *, undo: bool) -> list[Change]:
        data = orjson.loads(entry.undo)
        if entry.kind == p.ADD:
            return self.plan_add(data["id"], entry.applied_seq, undo=undo)
        if entry.kind == p.UPDATE:
            return self.plan_update(entry.seq, data, undo=undo)
        if entry.kind == RESTORE:
            return self.plan_restore(data["parts"], undo=undo)
        return self.plan_erase(data["ids"], entry.applied_seq, undo=undo)

    def plan_add(self, element_id: str, applied_seq: int, *, undo: bool):
        row = self.state(element_id)
        if undo:
            return [Change("delete", ids=[element_id])] if self.live(element_id) else []
        if row is not None and row.deleted and row.v == applied_seq:
            return [Change("add", ids=[element_id])]
        return []

    def plan_update(self, seq: int, data: dict, *, undo: bool) -> list[Change]:
        """Revert (or re-apply) only the fields nobody else has written since.

        A field's version is the seq of the update whose value it holds (its
        add's seq at first). Undo puts back the value and the version from before
        the update, so that the user's previous update on the same field is
        again the last writer and can be undone next; redo the reverse.
        """
        row = self.live(data["id"])
        if row is None:
            return []
        versions = orjson.loads(row.field_v)
        before_v = data.get("before_v", {})
        if undo:
            current = dict.fromkeys(data["set"], seq)
            target, target_v = data["before"], before_v
        else:
            current, target = before_v, data["set"]
            target_v = dict.fromkeys(target, seq)
        names = [k for k in target if versions.get(k, row.z) == current.get(k)]
        if not names:
            return []
        fields = {k: target[k] for k in names}
        field_versions = {k: target_v.get(k, row.z) for k in names}
        change = Change("update", [row.element_id], fields, field_versions)
        return [change]

    def plan_erase(self, ids: list[str], applied_seq: int, *, undo: bool):
        if not undo:
            live = [i for i in ids if self.live(i)]
            return [Change("delete", ids=live)] if live else []
        rows = [self.state(i) for i in ids]
        back = [r for r in rows if r is not None and r.deleted and r.v == applied_seq]
        back.sort(key=lambda r: r.z)
        return [Change("add", ids=[r.element_id]) for r in back]

    def plan_restore(self, parts: list[list], *, undo: bool) -> list[Change]:
        """A restore's parts, reverted last first (undo) or re-applied in order.

        Each part follows the rule of the plain op it is: a delete comes back
        only for the elements it erased that nobody changed since, an element
        it brought back goes again, an update reverts only the fields nobody
        wrote since. The seq of a delete or add part is the latest entry that
        applied or reverted it (changes.Batch.apply_changes writes it back).
        """
        order = list(enumerate(parts))
        if undo:
            order.reverse()
        changes: list[Change] = []
        for index, part in order:
            if part[0] == "delete":
                found = self.plan_erase(part[1], part[2], undo=undo)
            elif part[0] == "add":
                found = self.plan_add(part[1], part[2], undo=undo)
            else:
                _, element_id, seq, fields, before, before_v = part
                data = {
                    "id": element_id,
                    "set": fields,
                    "before": before,
                    "before_v": before_v,
                }
                found = self.plan_update(seq, data, undo=undo)
            for change in found:
                change.part = index
            changes += found
        return changes
