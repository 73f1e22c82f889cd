"""Reads: board state for a joining client, replays, and who is on a board.

The state of a board is read in pages. A page is one query (keyset
pagination on `z` or `seq`) whose rows are streamed `FETCH_ROWS` at a time
and packed into frames as they arrive; the page ends after `max_bytes //
FRAME_BUDGET` frames or `PAGE_ROWS` rows, and the rows past that point are
never fetched. So serving a big board to several joining clients at once never
holds it whole in memory, and no row's text is read twice. Frames are
assembled from the stored JSON text, so no element is decoded and re-encoded.
"""

from collections.abc import Callable, Iterable, Iterator
from contextlib import closing, contextmanager, nullcontext
from dataclasses import dataclass
from operator import attrgetter, itemgetter
from typing import TypeVar

import orjson
from django.db import connections, transaction
from django.db.models import BigIntegerField, F, Q, QuerySet, Sum, Value
from django.db.models.functions import Greatest, Least

from .models import Board, Element, Op, Presence
from .protocol import frames
from .protocol.frames import FRAME_BUDGET, Entries, OpsFrame, element_text, encode

# A page holds about this many bytes (whole frames of FRAME_BUDGET), and at
# most PAGE_ROWS rows; rows come from the database FETCH_ROWS at a time.
PAGE_BYTES = 1024 * 1024
PAGE_ROWS = 5000
FETCH_ROWS = 100

T = TypeVar("T")


def board_by_slug(slug):
    return Board.objects.select_related("owner").filter(slug=slug).first()


@contextmanager
def _streamed(rows: QuerySet, fields: tuple[str, ...]) -> Iterator[Iterator[tuple]]:
    """The first PAGE_ROWS + 1 `rows` (the one past them only says that more
    follow), fetched as they are consumed and closed when the block ends.

    On PostgreSQL, Django streams through a server-side cursor; inside a
    transaction it is a plain one, outside it would be WITH HOLD, which makes
    the server materialise the whole result first.
    """
    stream = rows.values_list(*fields)[: PAGE_ROWS + 1].iterator(FETCH_ROWS)
    postgresql = connections[rows.db].vendor == "postgresql"
    reading = transaction.atomic(using=rows.db) if postgresql else nullcontext()
    with reading, closing(stream):
        yield stream


def _page(
    rows: Iterator[tuple],
    expand: Callable[[tuple], Iterable[T]],
    text_of: Callable[[T], str],
    max_bytes: int,
) -> tuple[list[list[T]], bool]:
    """The items of `rows` (each row expanded) packed into at most
    `max_bytes // FRAME_BUDGET` frames' runs, and whether more follow: a row
    past PAGE_ROWS, or an item past the last frame, which the next page reads
    again from the key of the page's last item."""
    ended = False

    def items() -> Iterator[T]:
        nonlocal ended
        for count, row in enumerate(rows):
            if count == PAGE_ROWS:
                return
            yield from expand(row)
        ended = True

    runs: list[list[T]] = []
    for run in frames.packed(items(), text_of):
        runs.append(run)
        if len(runs) == max(1, max_bytes // FRAME_BUDGET):
            break
    return runs, not ended


# -- snapshots ----------------------------------------------------------------------


@dataclass(frozen=True)
class SnapshotPage:
    """`snapshot` frames of one page; `next_z` is where the next page starts,
    None once this page holds the last frame (`"more":false`)."""

    frames: list[str]
    next_z: int | None


def _element(row: tuple) -> tuple[tuple[int, str], ...]:
    z, body, v = row
    return ((z, element_text(body, v)),)


def snapshot_page(
    *, board_id: int, seq: int, after_z: int | None, max_bytes: int = PAGE_BYTES
) -> SnapshotPage:
    """The live elements above `after_z` (None: from the bottom) in stacking
    order, as complete `snapshot` frames all saying `seq`.

    Read the seq before the first page: whatever is committed while the pages
    are read reaches the client both ways, and clients ignore the older one.
    """
    live = Element.objects.live().filter(board_id=board_id).order_by("z")
    if after_z is not None:
        live = live.filter(z__gt=after_z)
    with _streamed(live, ("z", "body", "v")) as rows:
        runs, more = _page(rows, _element, itemgetter(1), max_bytes)
    last = len(runs) - 1
    page = [
        frames.snapshot_frame(seq, [text for _, text in run], more=more or n < last)
        for n, run in enumerate(runs)
    ] or [frames.snapshot_frame(seq, [], more=False)]
    return SnapshotPage(page, runs[-1][-1][0] if more else None)


# -- replays --------------------------------------------------------------------------


@dataclass(frozen=True)
class ReplayPage:
    """`ops` frames of one page of the log; `next_after` is the `after` of the
    next page, None once `upto` is reached."""

    frames: list[OpsFrame]
    next_after: int | None


def replay_page(
    *, board_id: int, after: int, upto: int, max_bytes: int = PAGE_BYTES
) -> ReplayPage:
    """The op entries with after < seq <= upto in seq order, as `ops` frames.

    Serves a resuming client (`?since=`) and a connection that missed a
    broadcast (a gap); an op that spans `after` or `upto` gives only the
    entries inside. A page may end inside an op of many entries: the next
    page reads that op again and takes only the entries after the page's last.
    """
    ops = Op.objects.filter(
        board_id=board_id, last_seq__gt=after, seq__lte=upto
    ).order_by("seq")

    def pieces(row: tuple) -> list[Entries]:
        first, last, text = row
        return _entries_within(first, last, text, after, upto)

    with _streamed(ops, ("seq", "last_seq", "entries")) as rows:
        runs, more = _page(rows, pieces, attrgetter("text"), max_bytes)
    reached = runs[-1][-1].last if runs else upto
    next_after = reached if more and reached < upto else None
    return ReplayPage([frames.ops_frame(run) for run in runs], next_after)


def _entries_within(
    first: int, last: int, text: str, after: int, upto: int
) -> list[Entries]:
    if first > after and last <= upto:
        return frames.entries_of(first, last, text)
    inside = [e for e in orjson.loads(text) if after < e["seq"] <= upto]
    return [Entries(e["seq"], e["seq"], encode(e)) for e in inside]


def replay_from(
    *, board_id: int, since: int | None, seq: int, max_replay: int
) -> int | None:
    """The `since` to replay from for a client that has applied `since`, when
    the log holds every op since..seq; None when it gets a snapshot instead."""
    if since is None or since > seq or seq - since > max_replay:
        return None
    if since == seq or log_covers(board_id=board_id, after=since, upto=seq):
        return since
    return None


def log_covers(*, board_id: int, after: int, upto: int) -> bool:
    """Whether the log holds every seq after..upto, counted by one aggregate."""
    inside = Least(F("last_seq"), Value(upto)) - Greatest(F("seq") - 1, Value(after))
    ops = Op.objects.filter(board_id=board_id, last_seq__gt=after, seq__lte=upto)
    total = ops.aggregate(n=Sum(inside, output_field=BigIntegerField()))["n"]
    return (total or 0) == upto - after


# -- who is on a board -------------------------------------------------------------


def presence_users(board, *, exclude_sid, fresh_after):
    rows = Presence.objects.on_board(board, fresh_after=fresh_after).exclude(
        sid=exclude_sid
    )
    return [
        {"sid": sid, "name": name, "color": color}
        for sid, name, color in rows.values_list("sid", "name", "color")
    ]


def board_seqs(*, board_ids):
    """The current seq of each of these boards, by id."""
    return dict(Board.objects.filter(pk__in=board_ids).values_list("pk", "seq"))


def boards_of(user):
    """The boards `user` owns or is a member of, most recently changed first."""
    if user is None or not user.is_authenticated:
        return Board.objects.none()
    mine = Q(owner=user) | Q(members__user=user)
    return Board.objects.filter(mine).distinct().order_by("-changed_at")
