"""Reads: board state for a joining client, replays, and who is on a board.

The state of a board is read in pages, each two bounded queries (keyset
pagination on `z` or `seq`), so that serving a big board to several joining
clients at once never holds it whole in memory. Frames are assembled from the
stored JSON text, so no element is decoded and re-encoded.
"""

import json
from dataclasses import dataclass

from django.db.models import (
    BigIntegerField,
    F,
    Q,
    QuerySet,
    Sum,
    Value,
)
from django.db.models.functions import Greatest, Least

from .models import Board, Element, OctetLength, Op, Presence
from .protocol import frames
from .protocol.frames import Entries, OpsFrame, element_text, encode

# A page holds about this many bytes of stored text (plus one row), and at
# most PAGE_ROWS rows.
PAGE_BYTES = 1024 * 1024
PAGE_ROWS = 2000


def board_by_slug(slug):
    return Board.objects.select_related("owner").filter(slug=slug).first()


def _budgeted(
    rows: QuerySet, *, order: str, fields: tuple[str, ...], text: str, max_bytes: int
) -> tuple[list[tuple], bool]:
    """The first `rows` in `order` whose `text` adds up to `max_bytes` (the row
    that crosses it included), and whether more rows follow.

    Two plain queries: the sizes of the next PAGE_ROWS + 1 rows (the one past
    them only says that more follow), then the fields of the rows within the
    budget, by their range of `order`. Only those rows' text leaves the
    database. (One query with a running SUM window cost about three times as
    much on SQLite: a 10,000-element snapshot took 170 ms instead of 50.)
    """
    sizes = list(
        rows.order_by(order)
        .annotate(text_bytes=OctetLength(text))
        .values_list(order, "text_bytes")[: PAGE_ROWS + 1]
    )
    taken = total = 0
    for _, length in sizes[:PAGE_ROWS]:
        taken += 1
        total += length or 0
        if total >= max_bytes:
            break
    if not taken:
        return [], False
    first, last = sizes[0][0], sizes[taken - 1][0]
    found = list(
        rows.filter(**{f"{order}__gte": first, f"{order}__lte": last})
        .order_by(order)
        .values_list(*fields)
    )
    return found, len(sizes) > taken


# -- snapshots ----------------------------------------------------------------------


@dataclass(frozen=True)
class SnapshotPage:
    """`snapshot` frames of one page; `next_z` is where the next page starts,
    None once this page holds the last frame (`"more":false`)."""

    frames: list[str]
    next_z: int | None


def snapshot_page(
    *, board_id: int, seq: int, after_z: int | None, max_bytes: int = PAGE_BYTES
) -> SnapshotPage:
    """The live elements above `after_z` (None: from the bottom) in stacking
    order, as complete `snapshot` frames all saying `seq`.

    Read the seq before the first page: whatever is committed while the pages
    are read reaches the client both ways, and clients ignore the older one.
    """
    live = Element.objects.live().filter(board_id=board_id)
    if after_z is not None:
        live = live.filter(z__gt=after_z)
    rows, more = _budgeted(
        live, order="z", fields=("z", "body", "v"), text="body", max_bytes=max_bytes
    )
    texts = [element_text(body, v) for _, body, v in rows]
    page = list(frames.snapshot_frames(seq, texts, final=not more))
    return SnapshotPage(page, rows[-1][0] if more else None)


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
    entries inside.
    """
    ops = Op.objects.filter(board_id=board_id, last_seq__gt=after, seq__lte=upto)
    rows, more = _budgeted(
        ops,
        order="seq",
        fields=("seq", "last_seq", "entries"),
        text="entries",
        max_bytes=max_bytes,
    )
    pieces = [
        piece
        for first, last, text in rows
        for piece in _entries_within(first, last, text, after, upto)
    ]
    reached = min(rows[-1][1], upto) if rows else upto
    next_after = reached if more and reached < upto else None
    return ReplayPage(list(frames.ops_frames(pieces)), next_after)


def _entries_within(
    first: int, last: int, text: str, after: int, upto: int
) -> list[Entries]:
    if first > after and last <= upto:
        return frames.entries_of(first, last, text)
    inside = [e for e in json.loads(text) if after < e["seq"] <= upto]
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
