"""Applying ops to one board: the rules of add, update, delete, clear, undo, redo.

A `Batch` runs inside one transaction that holds the board's write lock, so seqs
are assigned without gaps or races, even across server processes. Every op is
checked completely before it mutates anything: a refused op changes nothing.
"""

from dataclasses import dataclass
from typing import Any

import orjson
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser

from . import access
from . import protocol as p
from .history import Change, HistoryScan, in_chunks
from .identity import Author
from .models import Asset, Board, Element, History, Op
from .protocol import frames
from .protocol.frames import element_text, encode, size
from .rows import (
    ElementRow,
    OpRow,
    element_rows_of,
    insert_elements,
    insert_ops,
    update_elements,
)


def named_elements(op):
    """The element ids an op names, so that a batch reads them in one query."""
    if isinstance(op, p.AddOp):
        return [op.element["id"]]
    if isinstance(op, p.UpdateOp):
        return [op.id]
    if isinstance(op, p.DeleteOp):
        return list(op.ids)
    return []


@dataclass(frozen=True)
class Restore:
    """Put the board back as it was right after `seq`: `elements` is that state
    (timeline.state_at), live elements in stacking order, each with its `v`."""

    seq: int
    elements: list[dict]


class NothingToRestore(p.ProtocolError):
    code = "nothing_to_restore"


@dataclass
class OpRequest:
    """An op as it reached the server, with the checks already made on arrival."""

    cid: str
    kind: str
    author: Author
    op: object = None
    error: p.ProtocolError | None = None
    rate_limited: bool = False
    # False for a resend of a cid still in flight: it took no rate token.
    counted: bool = True
    # The connection's share keys, and the board's access version when its role
    # was decided (None: not a connection, e.g. the admin); see Batch.check.
    keys: tuple[str, ...] = ()
    access_version: int | None = None
    # When it arrived (the event loop's clock), for whiteboard_broadcast_seconds;
    # 0 for ops that did not come from a socket.
    received: float = 0.0


@dataclass
class Outcome:
    """What became of one request: committed seqs, an ack, or an error."""

    cid: str
    first: int | None = None
    last: int | None = None
    ack: bool = False
    error: p.ProtocolError | None = None


class Batch:
    """Applies a sequence of requests to a locked board and collects the log."""

    def __init__(self, board, limits, committed, *, undo_scan: int = 2000):
        self.board = board
        self.limits = limits
        # At most this many history entries are read per undo or redo.
        self.undo_scan = undo_scan
        self.seq = board.seq
        self.live = board.live_elements
        self.bytes = board.live_bytes
        # Uploaded images count against the same quota (assets.store).
        self.asset_bytes = board.asset_bytes
        self.first_seq = board.seq + 1
        self.committed = committed  # cid -> last seq, from the log
        # element id -> its row, or None: it never existed on the board.
        self.rows: dict[str, Any] = {}  # ElementRow, or None
        self.new_rows: list[ElementRow] = []
        self.dirty: dict[str, ElementRow] = {}
        self.new_ops: list[OpRow] = []
        # The committed op entries, as pieces that ops_frames packs into frames.
        self.pieces: list[frames.Entries] = []
        # (actor, keys) -> the role re-decided at commit, or None (no access).
        self.roles: dict[tuple, str | None] = {}
        # Actors of this batch who may have a redo list to empty; found with one
        # query per batch instead of one UPDATE per op (commits.redo_holders).
        self.redo_holders: set[str] = set()
        # Set by commits.commit_together: the redo lists to empty are written
        # with every board's rows at the end (`emptied`), not one UPDATE each.
        self.defer_redo = False
        self.emptied: set[str] = set()
        # What became of each request, once handled (commits.commit_together).
        self.outcomes: list[Outcome] = []

    # -- entry point ---------------------------------------------------------

    def handle(self, req):
        if req.cid in self.committed:
            return Outcome(req.cid, last=self.committed[req.cid], ack=True)
        try:
            self.check(req)
            first = self.seq + 1
            getattr(self, f"apply_{req.kind}")(req)
        except p.ProtocolError as exc:
            exc.cid = req.cid
            return Outcome(req.cid, error=exc)
        self.committed[req.cid] = self.seq
        return Outcome(req.cid, first=first, last=self.seq)

    def check(self, req: OpRequest) -> None:
        """The checks before the op's own, in the protocol's order."""
        if req.rate_limited:
            raise p.RateLimited(
                f"More than {self.limits.ops_per_second} ops per second: "
                "this op was not applied; send it again a little later."
            )
        if not req.author.moderator:
            if self.role_is_stale(req):
                if self.current_role(req) in (None, "viewer"):
                    raise p.AccessChanged()
            elif req.author.role == "viewer":
                raise p.Forbidden("You can view this board but not change it.")
            if self.board.locked:
                raise p.Forbidden("This board is locked: nobody can change it.")
        if req.error is not None:
            raise req.error

    def role_is_stale(self, req: OpRequest) -> bool:
        """Whether the board's access rules changed since the role was decided."""
        held = req.access_version
        return held is not None and held != self.board.access_version

    def current_role(self, req: OpRequest) -> str | None:
        """The author's role under the rules of the locked board row, or None.

        Decided here, not only by the best-effort event that tells open
        connections: a member removed while that event was lost is refused.
        """
        key = (req.author.actor, req.keys)
        if key not in self.roles:
            self.roles[key] = self.decide_role(req.author.user_id, req.keys)
        return self.roles[key]

    def decide_role(self, user_id: int | None, keys: tuple[str, ...]) -> str | None:
        if user_id is None:
            user = AnonymousUser()
        else:
            user = get_user_model().objects.filter(pk=user_id).first()
            if user is None:  # the account was deleted
                return None
        board = self.board
        if not isinstance(board, Board):  # commits.LockedBoard: the row, whole
            board = Board.objects.get(pk=board.pk)
        try:
            return access.board_role(board, user, keys)
        except p.Refusal:
            return None

    # -- element rows --------------------------------------------------------

    def prefetch(self, ids: list[str]) -> None:
        """Read the rows of these ids: one query per history.IDS_PER_QUERY ids."""
        missing = list(dict.fromkeys(i for i in ids if i not in self.rows))
        for i in missing:
            self.rows[i] = None
        for chunk in in_chunks(missing):
            for _, row in element_rows_of([self.board.pk], chunk):
                self.rows[row.element_id] = row

    def row(self, element_id):
        self.prefetch([element_id])
        return self.rows[element_id]

    def live_row(self, element_id):
        row = self.row(element_id)
        return row if row is not None and not row.deleted else None

    def touch(self, row: ElementRow) -> None:
        """A changed row: a new one is inserted as it ends up, a stored one updated."""
        if row.stored:
            self.dirty[row.element_id] = row

    # -- the log -------------------------------------------------------------

    def next_seq(self):
        self.seq += 1
        return self.seq

    def entry(self, req, seq, op, **fields):
        author = req.author
        head = {"op": op, "seq": seq, "cid": req.cid, "sid": author.sid}
        return {**head, "by": author.by, **fields}

    def record(self, req, entries, *, undo=None):
        text = encode(entries)
        author = req.author
        self.new_ops.append(
            OpRow(
                seq=entries[0]["seq"] if entries else self.seq,
                last_seq=self.seq,
                cid=req.cid,
                kind=req.kind,
                author_id=author.user_id,
                by=author.by,
                sid=author.sid,
                actor=author.actor,
                entries=text,
                undo=encode(undo) if undo is not None else "",
                history=History.DONE if undo is not None else History.NONE,
                applied_seq=entries[0]["seq"] if undo is not None else None,
            )
        )
        if entries:
            self.pieces.extend(frames.entries_of(entries[0]["seq"], self.seq, text))

    def empty_redo(self, actor):
        """A new op empties its author's redo list."""
        if actor not in self.redo_holders:
            return
        self.redo_holders.discard(actor)
        if self.defer_redo:
            self.emptied.add(actor)
            return
        Op.objects.filter(board=self.board, actor=actor, history=History.UNDONE).update(
            history=History.DROPPED
        )

    # -- the four plain ops ----------------------------------------------------

    def apply_add(self, req):
        element = req.op.element
        if self.row(element["id"]) is not None:
            raise p.Exists(
                f"An element with id {element['id']!r} exists or existed on this "
                "board; ids are never reused. Choose a new id."
            )
        if element["kind"] == "image":
            self.ensure_asset(element["asset"])
        self.ensure_room(1)
        body = {**element, "by": req.author.by}
        text = encode(body)
        self.ensure_bytes(size(text))
        seq = self.next_seq()
        row = ElementRow(
            element["id"], element["kind"], seq, seq, False, text, stored=False
        )
        self.rows[row.element_id] = row
        self.new_rows.append(row)
        self.live += 1
        self.bytes += size(text)
        full = {**body, "v": seq}
        self.finish_user_op(
            req, [self.entry(req, seq, "add", element=full)], row.element_id
        )

    def apply_update(self, req):
        op = req.op
        row = self.live_row(op.id)
        if row is None:
            raise p.NotFound(f"There is no element {op.id!r} on this board.")
        p.check_update_for_kind(row.kind, op.set, req.cid)
        body = orjson.loads(row.body)
        before = {name: body.get(name) for name in op.set}
        versions = orjson.loads(row.field_v)
        before_v = {name: versions.get(name, row.z) for name in op.set}
        text = encode({**body, **op.set})
        self.ensure_bytes(size(text) - size(row.body))
        seq = self.next_seq()
        self.set_body(row, text, dict.fromkeys(op.set, seq), seq)
        entry = self.entry(req, seq, "update", id=op.id, set=op.set)
        undo = {"id": op.id, "set": op.set, "before": before, "before_v": before_v}
        self.record(req, [entry], undo=undo)
        self.empty_redo(req.author.actor)

    def apply_delete(self, req):
        self.prefetch(req.op.ids)
        ids = [i for i in req.op.ids if self.live_row(i) is not None]
        if not ids:
            raise p.NotFound("None of these elements is on the board.")
        seq = self.next_seq()
        self.erase(ids, seq)
        entry = self.entry(req, seq, "delete", ids=ids)
        self.record(req, [entry], undo={"ids": ids})
        self.empty_redo(req.author.actor)

    def apply_clear(self, req):
        seq = self.next_seq()
        self.flush()
        live = Element.objects.live().filter(board=self.board)
        ids = list(live.order_by("z").values_list("element_id", flat=True))
        live.update(deleted=True, v=seq)
        for row in self.rows.values():
            if row is not None and not row.deleted:
                row.deleted, row.v = True, seq
        self.live = self.bytes = 0
        entry = self.entry(req, seq, "clear")
        undo = {"ids": ids} if req.author.sid is not None else None
        self.record(req, [entry], undo=undo)
        if undo is not None:
            self.empty_redo(req.author.actor)

    def apply_restore(self, req):
        """A restore as ordinary ops: one delete of what was not there, an add
        per element brought back (in its old place, with its old fields), an
        update per element whose fields differ. One history entry of its
        author's, so that undo reverts it whole (history.plan_restore)."""
        self.flush()
        target = {e["id"]: without_v(e) for e in req.op.elements}
        live = Element.objects.live().filter(board=self.board).order_by("z")
        live_ids = list(live.values_list("element_id", flat=True))
        self.prefetch(live_ids + list(target))
        gone = [i for i in live_ids if i not in target]
        back = [i for i in target if (r := self.rows.get(i)) is not None and r.deleted]
        changed = {
            i: fields
            for i in target
            if self.live_row(i) is not None
            and (fields := differing(orjson.loads(self.rows[i].body), target[i]))
        }
        if not (gone or back or changed):
            raise NothingToRestore(
                f"The board is already as it was after seq {req.op.seq}."
            )
        self.ensure_room(len(back) - len(gone))
        self.ensure_bytes(
            sum(size(encode(target[i])) for i in back)
            - sum(size(self.rows[i].body) for i in gone)
            + sum(
                size(encode({**orjson.loads(self.rows[i].body), **f}))
                - size(self.rows[i].body)
                for i, f in changed.items()
            )
        )
        entries, parts = [], []
        if gone:
            seq = self.next_seq()
            self.erase(gone, seq)
            entries.append(self.entry(req, seq, "delete", ids=gone))
            parts.append(["delete", gone, seq])
        for element_id in back:
            seq = self.next_seq()
            row = self.rows[element_id]
            old = orjson.loads(row.body)
            versions = orjson.loads(row.field_v)
            versions.update(dict.fromkeys(differing(old, target[element_id]), seq))
            row.body, row.field_v = encode(target[element_id]), encode(versions)
            self.restore(row, seq)
            element = orjson.loads(element_text(row.body, row.v))
            entries.append(self.entry(req, seq, "add", element=element))
            parts.append(["add", element_id, seq])
        for element_id, fields in changed.items():
            seq = self.next_seq()
            row = self.rows[element_id]
            body = orjson.loads(row.body)
            versions = orjson.loads(row.field_v)
            before = {name: body.get(name) for name in fields}
            before_v = {name: versions.get(name, row.z) for name in fields}
            text = encode({**body, **fields})
            self.set_body(row, text, dict.fromkeys(fields, seq), seq)
            entries.append(self.entry(req, seq, "update", id=element_id, set=fields))
            parts.append(["update", element_id, seq, fields, before, before_v])
        self.record(req, entries, undo={"parts": parts})
        self.empty_redo(req.author.actor)

    def finish_user_op(self, req, entries, element_id):
        self.record(req, entries, undo={"id": element_id})
        self.empty_redo(req.author.actor)

    # -- mutations shared by ops, undo and redo ---------------------------------

    def ensure_room(self, count):
        if self.live + count > self.limits.max_elements:
            raise p.BoardFull(
                f"The board already holds {self.live} elements; the limit is "
                f"{self.limits.max_elements}. Delete something first."
            )

    def ensure_bytes(self, growth: int) -> None:
        """Refuse a change that takes the live bytes and the board's images
        past its quota."""
        limit = self.limits.max_board_bytes
        used = self.bytes + self.asset_bytes
        if growth > 0 and used + growth > limit:
            images = " and images" if self.asset_bytes else ""
            raise p.BoardFull(
                f"This board holds {megabytes(used)} of drawings{images}; the "
                f"limit is {megabytes(limit)}. Delete something first."
            )

    def ensure_asset(self, key: str) -> None:
        """An image element shows an upload of this board (PROTOCOL.md 1.1),
        checked with the board locked: `cleanassets` locks it too before it
        removes an upload nothing names."""
        if not Asset.objects.filter(board_id=self.board.pk, key=key).exists():
            raise p.NotFound(
                f"There is no uploaded image {key!r} on this board; upload it "
                f"first (POST /b/{self.board.slug}/assets/)."
            )

    def set_body(
        self, row: ElementRow, text: str, field_versions: dict, seq: int
    ) -> None:
        """Store the element's new body; the given fields' versions change."""
        versions = orjson.loads(row.field_v)
        versions.update(field_versions)
        self.bytes += size(text) - size(row.body)
        row.body, row.field_v, row.v = text, encode(versions), seq
        self.touch(row)

    def erase(self, ids: list[str], seq: int) -> None:
        for element_id in ids:
            row = self.rows[element_id]
            row.deleted, row.v = True, seq
            self.bytes -= size(row.body)
            self.touch(row)
        self.live -= len(ids)

    def restore(self, row: ElementRow, seq: int) -> None:
        row.deleted, row.v = False, seq
        self.touch(row)
        self.live += 1
        self.bytes += size(row.body)

    # -- undo and redo ---------------------------------------------------------

    def apply_undo(self, req):
        self.replay_history(req, undo=True)

    def apply_redo(self, req):
        self.replay_history(req, undo=False)

    def replay_history(self, req: OpRequest, *, undo: bool) -> None:
        """Undo (or redo) the author's latest entry that still has an effect.

        Entries passed over are marked dropped even when the request then
        fails (a full board, a scan over its limit): they have nothing left to
        revert, and the next request need not read them again.
        """
        self.flush()
        scan = HistoryScan(self.board, self.rows, self.undo_scan)
        try:
            found = scan.latest(req.author.actor, undo=undo)
            if found is None:
                raise nothing_left(undo=undo, too_long=scan.too_long)
            self.apply_changes(req, *found, undo=undo)
        except p.ProtocolError:
            self.drop(scan.skipped)
            raise
        self.drop(scan.skipped)

    def drop(self, pks: list[int]) -> None:
        for chunk in in_chunks(pks):
            Op.objects.filter(pk__in=chunk).update(history=History.DROPPED)

    def apply_changes(
        self, req: OpRequest, entry: Op, changes: list[Change], *, undo: bool
    ) -> None:
        self.prefetch([i for change in changes for i in change.ids])
        self.ensure_room(sum(1 for c in changes if c.op == "add"))
        self.ensure_bytes(sum(self.growth(c) for c in changes))
        entries = [self.apply_change(req, change) for change in changes]
        entry.history = History.UNDONE if undo else History.DONE
        entry.applied_seq = entries[0]["seq"]
        fields = ["history", "applied_seq"]
        if entry.kind == "restore":
            entry.undo = encode(restore_parts_seen(entry.undo, changes, entries))
            fields.append("undo")
        entry.save(update_fields=fields)
        self.record(req, entries)
        if undo:
            self.redo_holders.add(req.author.actor)

    def growth(self, change: Change) -> int:
        """How many live bytes a planned change adds (negative: frees)."""
        if change.op == "add":
            return size(self.rows[change.ids[0]].body)
        if change.op == "delete":
            return -sum(size(self.rows[i].body) for i in change.ids)
        return size(self.updated_body(change)) - size(self.rows[change.ids[0]].body)

    def updated_body(self, change: Change) -> str:
        """The body of the row an update change names, with its fields set."""
        body = orjson.loads(self.rows[change.ids[0]].body)
        return encode({**body, **change.fields})

    def apply_change(self, req: OpRequest, change: Change) -> dict:
        seq = self.next_seq()
        if change.op == "delete":
            self.erase(change.ids, seq)
            return self.entry(req, seq, "delete", ids=change.ids)
        if change.op == "update":
            row = self.rows[change.ids[0]]
            self.set_body(row, self.updated_body(change), change.versions, seq)
            return self.entry(req, seq, "update", id=row.element_id, set=change.fields)
        row = self.rows[change.ids[0]]
        self.restore(row, seq)
        element = orjson.loads(element_text(row.body, row.v))
        return self.entry(req, seq, "add", element=element)

    # -- writing ---------------------------------------------------------------

    def flush(self):
        """Write what the batch changed so far, so that queries below see it."""
        board_id = self.board.pk
        insert_elements([(board_id, row) for row in self.new_rows])
        update_elements([(board_id, row) for row in self.dirty.values()])
        insert_ops([(board_id, op) for op in self.new_ops])
        self.new_rows, self.dirty, self.new_ops = [], {}, []

    def finish(self):
        self.flush()
        if self.seq != self.board.seq:
            self.board.seq = self.seq
            self.board.live_elements = self.live
            self.board.live_bytes = self.bytes
            fields = ["seq", "live_elements", "live_bytes", "changed_at"]
            self.board.save(update_fields=fields)

    def ops_frames(self) -> list[frames.OpsFrame]:
        """The `ops` frames that carry everything this batch committed, in seq
        order, each within the protocol's frame size (PROTOCOL.md, "Frame size")."""
        return list(frames.ops_frames(self.pieces))


def without_v(element: dict) -> dict:
    """An element as its row's body stores it: without `v`."""
    return {name: value for name, value in element.items() if name != "v"}


def differing(body: dict, target: dict) -> dict:
    """The fields (not id, kind or by) whose values `target` changes."""
    names = [n for n in {**body, **target} if n not in ("id", "kind", "by")]
    return {n: target.get(n) for n in names if body.get(n) != target.get(n)}


def restore_parts_seen(undo_text: str, changes: list, entries: list[dict]) -> dict:
    """A restore's history entry after an undo or redo of it: each delete or
    add part remembers the seq of the entry that last reverted or re-applied
    it, which the next redo or undo checks (history.plan_restore)."""
    data = orjson.loads(undo_text)
    for change, entry in zip(changes, entries, strict=True):
        part = data["parts"][change.part]
        if part[0] != "update":
            part[2] = entry["seq"]
    return data


def megabytes(count: int) -> str:
    """A byte count as people read it: MB, or kB below a tenth of one."""
    if count < 100 * 1024:
        return f"{count / 1024:.1f} kB"
    return f"{count / (1024 * 1024):.1f} MB"


def nothing_left(*, undo: bool, too_long: bool) -> p.ProtocolError:
    what = "undo" if undo else "redo"
    error = p.NothingToUndo if undo else p.NothingToRedo
    if too_long:
        return error(
            f"Nothing to {what} was found in the latest part of your history "
            "on this board, which was too long to search at once; the part "
            f"searched is forgotten, so {what} again to search further back."
        )
    return error(f"There is nothing of yours left to {what} on this board.")
