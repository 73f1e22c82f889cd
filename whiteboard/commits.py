"""Committing ops: one board's batch, or every board's batches of a process at once.

A process hands all of its boards' waiting batches to `ops_commit_boards` in one
call (realtime/process.py, `GroupCommitter`). Batches of plain ops (add, update,
delete) are committed set-based: whatever the number of boards, the transaction
runs the same handful of statements (lock the boards, look up who has a redo
list, read the rows that updates and deletes name, then one multi-row INSERT per
table and one UPDATE of every board's seq), instead of about seven per board.
It is write-first: new element ids and cids are not read but left to the unique
constraints to judge (see `commit_together`). A batch with a clear, an undo or
a redo goes the per-board way (`ops_commit`), which reads and writes as it goes.

Seq order and durability are those of the per-board way: every board row is
locked (in id order, so two processes cannot deadlock) before its seq is read,
and nothing is sent before the transaction has committed.
"""

from __future__ import annotations

import logging
import time
from collections import Counter, defaultdict
from collections.abc import Collection, Iterable
from dataclasses import dataclass, fields
from typing import Any

from django.conf import settings
from django.db import (
    DatabaseError,
    InterfaceError,
    OperationalError,
    connections,
    router,
    transaction,
)
from django.db.models import Q
from django.utils import timezone

from .changes import Batch, OpRequest, Outcome, named_elements
from .history import in_chunks
from .models import Board, History, Op
from .protocol import ADD, DELETE, REDO, UNDO, UPDATE, Limits
from .protocol.frames import OpsFrame
from .rows import (
    ElementRow,
    element_rows_of,
    insert_elements,
    insert_ops,
    update_elements,
)

logger = logging.getLogger(__name__)

# (board id, the requests in arrival order, the limits they are checked against)
BoardBatch = tuple[int, list[OpRequest], Limits]

SET_KINDS = frozenset({ADD, UPDATE, DELETE})


@dataclass
class CommitResult:
    """One board's committed batch: an outcome per request, and the `ops` frames
    (seqs `first`..`last`, consecutive, in order) to broadcast once committed."""

    outcomes: list[Outcome]
    frames: list[OpsFrame]
    first: int | None
    last: int | None


def result_of(batch: Batch, outcomes: list[Outcome]) -> CommitResult:
    first = batch.first_seq if batch.seq >= batch.first_seq else None
    last = batch.seq if first else None
    return CommitResult(outcomes, batch.ops_frames(), first, last)


def new_batch(
    board: Board | LockedBoard, limits: Limits, committed: dict[str, int]
) -> Batch:
    return Batch(board, limits, committed, undo_scan=settings.WHITEBOARD_UNDO_SCAN)


# --- One board -----------------------------------------------------------------


def ops_commit(
    *, board_id: int, requests: list[OpRequest], limits: Limits
) -> CommitResult:
    """Apply a batch of requests in one transaction holding the board's lock."""
    with transaction.atomic():
        board = Board.objects.select_for_update().get(pk=board_id)
        batch = new_batch(board, limits, committed_cids({board_id}, requests)[board_id])
        batch.redo_holders = redo_holders({board_id}, requests)[board_id]
        batch.prefetch([i for r in requests for i in named_elements(r.op)])
        outcomes = [batch.handle(r) for r in requests]
        batch.finish()
    return result_of(batch, outcomes)


def commit_or_error(
    board_id: int, requests: list[OpRequest], limits: Limits
) -> CommitResult | Exception:
    try:
        return ops_commit(board_id=board_id, requests=requests, limits=limits)
    except Exception as exc:  # handed to that board's room
        return exc


def needs_own_transaction(requests: list[OpRequest]) -> bool:
    """Whether a batch holds an undo or redo, whose history scan is heavier
    than a plain op's: it is committed alone, so that no other board's ops wait
    inside its transaction."""
    return any(r.kind in (UNDO, REDO) for r in requests)


def set_based(requests: list[OpRequest]) -> bool:
    """Whether a batch holds only adds, updates and deletes (refused or not),
    which `commit_together` can apply without writing as it goes."""
    return all(r.kind in SET_KINDS for r in requests)


# --- Every board of a process ------------------------------------------------------


class Conflict(Exception):
    """A write-first INSERT met a row the checks had assumed absent (an element
    id or a cid already on the board): the transaction is rolled back and the
    batches are committed again with those rows read first."""

    def __init__(self, boards: set[int]) -> None:
        super().__init__(f"rows already on boards {sorted(boards)}")
        self.boards = boards


# board id -> when (time.monotonic()) a write-first commit last conflicted there.
# Such a board is committed read-first for CAREFUL_FOR seconds, so that a client
# that keeps resending ids or cids costs its own board a read, not every board
# of the process a rolled-back transaction.
careful: dict[int, float] = {}
CAREFUL_FOR = 60.0


def read_first(board_id: int) -> bool:
    since = careful.get(board_id)
    if since is None:
        return False
    if time.monotonic() - since < CAREFUL_FOR:
        return True
    del careful[board_id]
    return False


def remember_careful(boards: set[int]) -> None:
    """Mark boards careful; forget those whose minute is over (the dict holds
    only the boards that conflicted within CAREFUL_FOR)."""
    now = time.monotonic()
    for board_id, since in list(careful.items()):
        if now - since >= CAREFUL_FOR:
            del careful[board_id]
    careful.update(dict.fromkeys(boards, now))


def ops_commit_boards(*, batches: list[BoardBatch]) -> list[CommitResult | Exception]:
    """Commit several boards' batches; a CommitResult or the exception per batch.

    The plain batches share one transaction: set-based where they can be
    (`commit_together`), else each in a savepoint, so one batch's failure undoes
    that batch only. A write-first commit that conflicts is rolled back and made
    again read-first (`Conflict`). Should the set-based writes fail otherwise (a
    constraint the checks did not foresee), the transaction is rolled back and
    every batch is committed again the per-board way, which isolates the one at
    fault. A batch holding an undo or redo then commits in a transaction of its
    own.
    """
    order = sorted(range(len(batches)), key=lambda i: batches[i][0])
    alone = [i for i in order if needs_own_transaction(batches[i][1])]
    shared = [i for i in order if i not in set(alone)]
    together = [i for i in shared if set_based(batches[i][1])]
    if len({batches[i][0] for i in together}) < len(together):
        together = []  # one board twice: its batches must see each other
    results: list[CommitResult | Exception | None] = [None] * len(batches)
    try:
        try:
            commit_shared(batches, shared, together, results)
        except Conflict as conflict:
            logger.info("Write-first commit met stored rows (%s); read-first", conflict)
            remember_careful(conflict.boards)
            commit_shared(batches, shared, together, results)
    except (OperationalError, InterfaceError):
        raise  # the database is away: every sender is told (1013)
    except DatabaseError as exc:
        logger.warning("Set-based commit failed (%s); committing board by board", exc)
        with transaction.atomic():
            for i in shared:
                results[i] = commit_or_error(*batches[i])
    for i in alone:
        results[i] = commit_or_error(*batches[i])
    return [r if r is not None else RuntimeError("not committed") for r in results]


def commit_shared(
    batches: list[BoardBatch], shared: list[int], together: list[int], results: list
) -> None:
    """The plain batches, in one transaction; `together` set-based."""
    with transaction.atomic():
        done = commit_together([batches[i] for i in together])
        for i, result in zip(together, done, strict=True):
            results[i] = result
        for i in shared:
            if i not in together:
                results[i] = commit_or_error(*batches[i])


def commit_together(batches: list[BoardBatch]) -> list[CommitResult | Exception]:
    """Apply plain batches of several boards, inside the caller's transaction,
    with a number of statements that does not grow with the number of boards.

    Each batch is checked and applied in memory first (a `Batch` over rows
    read for all boards at once); a batch that raises is left out of the
    writes, and its exception is its result.

    Write-first: the rows an add creates and the cids of the log are not read
    beforehand. An element id is never reused and a cid is sent again only
    after a reconnect (the room acks a resend it committed itself), so they
    are almost always new; the INSERTs skip any row already there, and a row
    skipped raises `Conflict`, whose retry reads them (`read_first`). A batch
    with a refused op is applied again with its rows and cids read, before
    anything is written: the refusal might hide an `exists` or an ack. The
    database stays the judge: a wrong guess costs a retry, never a wrong seq.
    """
    if not batches:
        return []
    boards = lock_boards([board_id for board_id, _, _ in batches])
    careful_ids = {board_id for board_id in boards if read_first(board_id)}
    holders = redo_holders(boards, [r for _, rs, _ in batches for r in rs])
    applied = apply(boards, batches, holders, careful_ids)
    unsure = {
        board_id
        for board_id, result in applied.items()
        if board_id not in careful_ids
        and isinstance(result, Batch)
        and any(o.error is not None for o in result.outcomes)
    }
    if unsure:
        again = [batch for batch in batches if batch[0] in unsure]
        applied.update(apply(boards, again, holders, unsure))
    write([b for b in applied.values() if isinstance(b, Batch)])
    return [outcome(applied[board_id]) for board_id, _, _ in batches]


def apply(
    boards: dict[int, LockedBoard],
    batches: list[BoardBatch],
    holders: dict[int, set[str]],
    careful_ids: set[int],
) -> dict[int, Batch | Exception]:
    """Each board's batch applied in memory; the boards in `careful_ids` with
    their cids and every named row read first, the others write-first."""
    requests = [r for _, batch_requests, _ in batches for r in batch_requests]
    committed = committed_cids(careful_ids, requests)
    rows = element_rows(boards, batches, careful_ids)
    applied: dict[int, Batch | Exception] = {}
    for board_id, batch_requests, limits in batches:
        board = boards.get(board_id)
        if board is None:
            applied[board_id] = Board.DoesNotExist(f"Board {board_id} does not exist.")
            continue
        batch = new_batch(board, limits, committed[board_id])
        batch.rows = rows[board_id]
        batch.redo_holders = set(holders[board_id])
        batch.defer_redo = True
        try:
            batch.outcomes = [batch.handle(r) for r in batch_requests]
        except Exception as exc:  # a bug: that board's senders are told (1011)
            logger.exception("Applying a batch on board %s failed", board.slug)
            applied[board_id] = exc
            continue
        applied[board_id] = batch
    return applied


def outcome(applied: Batch | Exception) -> CommitResult | Exception:
    if isinstance(applied, Exception):
        return applied
    return result_of(applied, applied.outcomes)


@dataclass(slots=True)
class LockedBoard:
    """A board row as the set-based commit locks it: what a Batch checks and
    counts. Raw SQL and no model instance: building 100 Board instances took
    longer than the query (the access rules, rarely needed at commit, read the
    whole row again: Batch.decide_role). Fields in the order they are read
    (`pk` is the `id` column)."""

    pk: int
    slug: str
    seq: int
    live_elements: int
    live_bytes: int
    asset_bytes: int
    locked: bool
    access_version: int

    def __post_init__(self) -> None:
        self.locked = bool(self.locked)  # SQLite: 0 or 1


def lock_boards(board_ids: list[int]) -> dict[int, LockedBoard]:
    """Every board row, locked in id order (one statement; on SQLite the
    transaction itself holds the one write lock)."""
    connection = connections[router.db_for_write(Board)]
    quote = connection.ops.quote_name
    names = [f.name for f in fields(LockedBoard)]
    columns = ", ".join(quote("id" if c == "pk" else c) for c in names)
    marks = ", ".join(["%s"] * len(board_ids))
    sql = (
        f"SELECT {columns} FROM {quote(Board._meta.db_table)} "
        f"WHERE {quote('id')} IN ({marks}) ORDER BY {quote('id')}"
    )
    if connection.features.has_select_for_update:
        sql += " FOR UPDATE"
    with connection.cursor() as cursor:
        cursor.execute(sql, board_ids)
        return {values[0]: LockedBoard(*values) for values in cursor.fetchall()}


def committed_cids(
    board_ids: set[int], requests: list[OpRequest]
) -> defaultdict[int, dict[str, int]]:
    """board id -> {cid: last seq} of the requests' cids already in the log, on
    these boards (the others are committed write-first)."""
    found: defaultdict[int, dict[str, int]] = defaultdict(dict)
    if not board_ids:
        return found
    cids = list({r.cid for r in requests})
    for chunk in in_chunks(cids):
        query = Op.objects.filter(board_id__in=board_ids, cid__in=chunk)
        for board_id, cid, last_seq in query.values_list("board_id", "cid", "last_seq"):
            found[board_id][cid] = last_seq
    return found


def element_rows(
    boards: dict[int, LockedBoard], batches: list[BoardBatch], careful_ids: set[int]
) -> defaultdict[int, dict[str, ElementRow | None]]:
    """board id -> {element id: its row, or None if it never existed} for every
    element the batches name. The rows an update or delete names are read, for
    all boards together; the ids only adds name are not, but on the boards in
    `careful_ids`."""
    named: defaultdict[int, dict[str, ElementRow | None]] = defaultdict(dict)
    wanted: set[str] = set()
    for board_id, requests, _ in batches:
        for r in requests:
            ids = named_elements(r.op)
            named[board_id].update(dict.fromkeys(ids))
            if r.kind != ADD or board_id in careful_ids:
                wanted.update(ids)
    for chunk in in_chunks(list(wanted)):
        for board_id, row in element_rows_of(list(boards), chunk):
            if row.element_id in named[board_id]:
                named[board_id][row.element_id] = row
    return named


def redo_holders(
    boards: Collection[int], requests: list[OpRequest]
) -> defaultdict[int, set[str]]:
    """board id -> the actors of these requests with undone entries there, whose
    redo lists a new op empties (Batch.empty_redo). Raw SQL: the ORM spent more
    building this query than the database spends answering it."""
    holders: defaultdict[int, set[str]] = defaultdict(set)
    actors = list({r.author.actor for r in requests})
    if not boards or not actors:
        return holders
    connection = connections[router.db_for_read(Op)]
    quote = connection.ops.quote_name
    for chunk in in_chunks(actors):
        sql = (
            f"SELECT DISTINCT {quote('board_id')}, {quote('actor')} "
            f"FROM {quote(Op._meta.db_table)} WHERE {quote('history')} = %s "
            f"AND {quote('board_id')} IN ({', '.join(['%s'] * len(boards))}) "
            f"AND {quote('actor')} IN ({', '.join(['%s'] * len(chunk))})"
        )
        with connection.cursor() as cursor:
            cursor.execute(sql, [str(History.UNDONE), *boards, *chunk])
            for board_id, actor in cursor.fetchall():
                holders[board_id].add(actor)
    return holders


# --- The writes of every applied batch ---------------------------------------------


def write(applied: list[Batch]) -> None:
    """One INSERT per table (in chunks of rows), one prepared UPDATE of the
    changed element rows, the redo lists emptied, one UPDATE of the seqs.

    Raises Conflict, naming the boards, if an INSERT skipped a row that was
    already there (see commit_together)."""
    new_rows = [(b.board.pk, row) for b in applied for row in b.new_rows]
    new_ops = [(b.board.pk, op) for b in applied for op in b.new_ops]
    short = shortfall(new_rows, insert_elements(new_rows, skip_existing=True))
    short |= shortfall(new_ops, insert_ops(new_ops, skip_existing=True))
    if short:
        raise Conflict(short)
    update_elements([(b.board.pk, row) for b in applied for row in b.dirty.values()])
    drop_redo((batch.board.pk, actor) for batch in applied for actor in batch.emptied)
    update_boards([batch for batch in applied if batch.seq != batch.board.seq])


def shortfall(pairs: list[tuple[int, Any]], inserted: list[int]) -> set[int]:
    """The boards some of whose (board id, row) pairs were not inserted."""
    wanted, got = Counter(b for b, _ in pairs), Counter(inserted)
    return {board_id for board_id, count in wanted.items() if got[board_id] < count}


def drop_redo(pairs: Iterable[tuple[int, str]]) -> None:
    """Empty the redo lists of these (board id, actor) pairs (one statement)."""
    condition = Q()
    for board_id, actor in pairs:
        condition |= Q(board_id=board_id, actor=actor)
    if condition:
        Op.objects.filter(condition, history=History.UNDONE).update(
            history=History.DROPPED
        )


def update_boards(changed: list[Batch]) -> None:
    """Write every changed board's seq, live count and live bytes in one UPDATE."""
    if not changed:
        return
    db = router.db_for_write(Board)
    connection = connections[db]
    quote = connection.ops.quote_name
    now = timezone.now()
    params: list[object] = []
    columns = []
    for column, value_of in (
        ("seq", lambda b: b.seq),
        ("live_elements", lambda b: b.live),
        ("live_bytes", lambda b: b.bytes),
    ):
        cases = " ".join(["WHEN %s THEN %s"] * len(changed))
        columns.append(f"{quote(column)} = CASE {quote('id')} {cases} END")
        for batch in changed:
            params += [batch.board.pk, value_of(batch)]
    stamp = Board._meta.get_field("changed_at").get_db_prep_save(now, connection)
    columns.append(f"{quote('changed_at')} = %s")
    params.append(stamp)
    marks = ", ".join(["%s"] * len(changed))
    params += [batch.board.pk for batch in changed]
    sql = (
        f"UPDATE {quote(Board._meta.db_table)} SET {', '.join(columns)} "
        f"WHERE {quote('id')} IN ({marks})"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
