"""What the admin shows of the running service: the Server status page and each
board's activity (its live connections and a chart of its ops per minute).

The numbers come from two places, and the page says which is which:

- `metrics.snapshot()`, what /metrics serves: the server processes of this host
  (those sharing the metrics directory, or this process alone), counted since
  they started;
- the database, which every host writes to: ops committed and presence rows,
  for the whole cluster.

An "op" here is a seq: an Op row holding several consecutive seqs (last_seq >
seq) counts as that many, as `metrics.committed` counts them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Count, F, OuterRef, QuerySet, Subquery, Sum
from django.db.models.functions import Coalesce
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from . import metrics, services
from .models import Board, Op, Presence
from .protocol import messages as m

RATE_WINDOW = 60  # seconds: "ops per second" is the last minute's average
CHART_MINUTES = 60
BUSIEST = 10

# What each close code of `whiteboard_closes_total` means, for staff who do not
# know them by heart (docs/protocol.md has the details).
CLOSE_MEANINGS = {
    "1000": "normal",
    "1001": "going away",
    "1005": "no code given",
    "1006": "dropped without a close",
    str(m.CLOSE_POLICY): "too many refused frames",
    str(m.CLOSE_TOO_BIG): "frame too big",
    str(m.CLOSE_INTERNAL): "server error",
    str(m.CLOSE_RESTART): "server restarting",
    str(m.CLOSE_TRY_AGAIN): "channel layer or database unreachable",
    str(m.CLOSE_LOGIN_REQUIRED): "login required",
    str(m.CLOSE_FORBIDDEN): "forbidden",
    str(m.CLOSE_NOT_FOUND): "board not found",
    str(m.CLOSE_IDLE): "idle",
    str(m.CLOSE_SLOW_READER): "slow reader",
    str(m.CLOSE_TOO_MANY_CONNECTIONS): "too many connections",
    "none": "no code",
    "other": "a code outside the known set",
}


# == the database's numbers (cluster-wide) ==========================================


def ops_after(board: Any, since: datetime, *, board_above: Any = None) -> QuerySet:
    """The ops of `board` (a pk, or an OuterRef) created at or after `since`,
    read without going through the board's whole history.

    Op has no index on created_at, and a board's log only grows: filtering on
    created_at alone reads every op the board ever had. But seqs are given in
    commit order, and created_at is stamped inside that commit, with the board
    locked, so the ops after `since` are those above the board's last op before
    it. That op is found by walking the (board, seq) index down from the top, and
    the ops above it are a range of the same index: both read about as many rows
    as the window holds. (Two hosts whose clocks disagree can stamp an op a
    little older than the one before it; at the window's edge such an op can be
    missed, which a chart and a rate can afford.)

    `board_above` is how the inner lookup names the board when `board` is an
    OuterRef (one level further out); with a pk it is the same pk.
    """
    before = (
        Op.objects.filter(board=board if board_above is None else board_above)
        .filter(created_at__lt=since)
        .order_by("-seq")
        .values("last_seq")[:1]
    )
    return Op.objects.filter(
        board=board, created_at__gte=since, seq__gt=Coalesce(Subquery(before), 0)
    )


def seqs_of_op() -> Any:
    """The number of seqs one Op row holds, as an expression."""
    return F("last_seq") - F("seq") + 1


def ops_per_minute(
    board: Board, now: datetime, minutes: int = CHART_MINUTES
) -> list[int]:
    """The ops committed on `board` in each of the last `minutes` clock minutes,
    oldest first; the last one is the current minute, so far.

    Bucketed here rather than in SQL: truncating a timestamp to its minute is
    written differently by every database, and `ops_after` reads the window's
    rows and no others (a board at 100 ops a second has 360,000 in an hour: the
    page then takes a couple of seconds).
    """
    start = minute_start(now) - timedelta(minutes=minutes - 1)
    counts = [0] * minutes
    rows = ops_after(board.pk, start).values_list("created_at", "seq", "last_seq")
    for created_at, seq, last_seq in rows.iterator(chunk_size=2000):
        index = int((created_at - start).total_seconds() // 60)
        # A stamp past `now` (another host's clock) counts in the current minute.
        counts[min(index, minutes - 1)] += last_seq - seq + 1
    return counts


def minute_start(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0)


def ops_since(since: datetime) -> int:
    """The ops committed on every board since `since`, in one statement.

    Only boards changed since then can have any (a commit stamps its boards'
    changed_at after its ops' created_at); for each, `ops_after` reads just the
    window's rows. The boards table itself is read whole: it has no index on
    changed_at, but it holds one row per board, not one per op.
    """
    per_board = (
        ops_after(OuterRef("pk"), since, board_above=OuterRef(OuterRef("pk")))
        .values("board")
        .annotate(seqs=Sum(seqs_of_op()))
        .values("seqs")
    )
    boards = Board.objects.filter(changed_at__gte=since).order_by()
    total = boards.annotate(seqs=Subquery(per_board)).aggregate(total=Sum("seqs"))
    return int(total["total"] or 0)


def fresh_presence() -> QuerySet:
    """Presence rows of open connections: refreshed within three heartbeats,
    as the board's own `joined`/`left` decide it."""
    heartbeat = services.current_limits().heartbeat_seconds
    return Presence.objects.filter(seen_at__gte=services.presence_cutoff(heartbeat))


def live_connections(board: Board | None = None) -> int:
    """Open connections, on one board or on all, on every server process."""
    rows = fresh_presence()
    return (rows if board is None else rows.filter(board=board)).count()


@dataclass(frozen=True)
class BusyBoard:
    title: str
    slug: str
    connections: int
    url: str


def busiest_boards(limit: int = BUSIEST) -> list[BusyBoard]:
    """The boards with the most open connections, most first."""
    rows = (
        fresh_presence()
        .values("board_id", "board__title", "board__slug")
        .annotate(connections=Count("id"))
        .order_by("-connections", "board_id")[:limit]
    )
    return [
        BusyBoard(
            title=row["board__title"],
            slug=row["board__slug"],
            connections=row["connections"],
            url=reverse("admin:whiteboard_board_change", args=[row["board_id"]]),
        )
        for row in rows
    ]


# == the metrics' numbers (this host, since its processes started) ==================


def latency(histo: metrics.Histo, q: float) -> str:
    """A quantile of a seconds histogram as staff read it: the bucket bound it
    is under (the histogram keeps no finer detail), in ms below a second."""
    bound = histo.quantile(q)
    if bound is None:
        return "none observed yet"
    if math.isinf(bound):
        finite = [b for b in histo.buckets if not math.isinf(b)]
        return f"over {seconds(max(finite))}" if finite else "unknown"
    return f"≤ {seconds(bound)}"


def seconds(value: float) -> str:
    return f"{value * 1000:g} ms" if value < 1 else f"{value:g} s"


def whole(value: float) -> int:
    """Counters are floats in prometheus_client; every one here counts events."""
    return int(round(value))


@dataclass(frozen=True)
class Close:
    code: str
    meaning: str
    by: str
    count: int


@dataclass(frozen=True)
class ServerStatus:
    """Everything the Server status page shows, read once per request."""

    # metrics.snapshot(): this host
    connections: int
    boards_active: int
    processes: int
    ops_committed: list[tuple[str, int]]
    ops_committed_total: int
    commit_p50: str
    commit_p99: str
    broadcast_p50: str
    broadcast_p99: str
    refusals: list[tuple[str, int]]
    closes: list[Close]
    channel_layer_errors: int
    database_errors: int
    # the database: the whole cluster
    ops_last_minute: int
    ops_per_second: str
    live_connections: int
    busiest: list[BusyBoard]


def server_status(now: datetime) -> ServerStatus:
    snap = metrics.snapshot()
    recent = ops_since(now - timedelta(seconds=RATE_WINDOW))
    return ServerStatus(
        connections=whole(snap.connections),
        boards_active=whole(snap.boards_active),
        processes=snap.processes,
        ops_committed=counted(snap.ops_committed),
        ops_committed_total=whole(snap.ops_total),
        commit_p50=latency(snap.commit, 0.5),
        commit_p99=latency(snap.commit, 0.99),
        broadcast_p50=latency(snap.broadcast, 0.5),
        broadcast_p99=latency(snap.broadcast, 0.99),
        refusals=counted(snap.refusals),
        closes=closes(snap.closes),
        channel_layer_errors=whole(snap.channel_layer_errors),
        database_errors=whole(snap.database_errors),
        ops_last_minute=recent,
        ops_per_second=f"{recent / RATE_WINDOW:.2f}",
        live_connections=live_connections(),
        busiest=busiest_boards(),
    )


def counted(table: dict[str, float]) -> list[tuple[str, int]]:
    """A counter's label values with their counts, most first (zeros left out:
    a label set appears once counted, and an empty row says nothing)."""
    rows = [(label, whole(value)) for label, value in table.items() if whole(value)]
    return sorted(rows, key=lambda row: (-row[1], row[0]))


def closes(table: dict[tuple[str, str], float]) -> list[Close]:
    rows = [
        Close(code, CLOSE_MEANINGS.get(code, ""), by, whole(value))
        for (code, by), value in table.items()
        if whole(value)
    ]
    return sorted(rows, key=lambda row: (row.code, row.by))


# == the chart ====================================================================

# Geometry of the ops chart, in SVG user units (pixels at scale 1).
PLOT_LEFT = 44
PLOT_TOP = 8
PLOT_HEIGHT = 100
SLOT_WIDTH = 8  # one minute: a 7-wide bar and a gap
AXIS_SPACE = 22
# Colours are the text's (currentColor), lighter: right in the light and the dark
# theme alike. Presentation attributes, not `style`: the site's CSP
# (whiteboard/csp.py, style-src 'self') drops inline styles.
TEXT = (
    '<text x="{}" y="{}" text-anchor="{}" font-size="11" fill="currentColor" '
    'fill-opacity="0.75">{}</text>'
)


def ops_chart_svg(counts: list[int], *, start: datetime) -> SafeString:
    """An inline SVG bar chart of ops per minute: one slot per entry of
    `counts`, the first being the minute that begins at `start`.

    Each slot has a <title> (its minute and count, shown on hover) over a
    transparent rect the height of the plot, so an empty minute can be hovered
    too; a bar is drawn only for a minute with ops. Bar heights are
    proportional to the counts, the busiest minute reaching the top. Drawn on
    the server with no script, and from numbers and times only: nothing a user
    typed ends up in it.
    """
    peak = max(counts, default=0)
    width = PLOT_LEFT + SLOT_WIDTH * len(counts) + 4
    height = PLOT_TOP + PLOT_HEIGHT + AXIS_SPACE
    label = f"Ops per minute over the last {len(counts)} minutes, at most {peak}"
    return format_html(
        '<svg class="ops-chart" xmlns="http://www.w3.org/2000/svg" role="img" '
        'aria-label="{}" width="{}" height="{}" viewBox="0 0 {} {}">{}{}{}</svg>',
        label,
        width,
        height,
        width,
        height,
        chart_axes(counts, peak, start),
        format_html_join(
            "",
            "{}",
            ((chart_slot(i, n, peak, start),) for i, n in enumerate(counts)),
        ),
        chart_empty_note(peak, width),
    )


def chart_slot(index: int, count: int, peak: int, start: datetime) -> SafeString:
    """One minute: its hover text, hover area and (if it had ops) its bar."""
    x = PLOT_LEFT + SLOT_WIDTH * index
    minute = start + timedelta(minutes=index)
    hover = f"{clock(minute)}: {count} op{'' if count == 1 else 's'}"
    bar = SafeString("")
    if count > 0:
        bar_height = round(count / peak * PLOT_HEIGHT, 1)
        bar = format_html(
            '<rect class="bar" x="{}" y="{}" width="{}" height="{}" '
            'fill="currentColor" fill-opacity="0.55"/>',
            x,
            PLOT_TOP + PLOT_HEIGHT - bar_height,
            SLOT_WIDTH - 1,
            bar_height,
        )
    return format_html(
        '<g class="minute"><title>{}</title>'
        '<rect x="{}" y="{}" width="{}" height="{}" fill="transparent"/>{}</g>',
        hover,
        x,
        PLOT_TOP,
        SLOT_WIDTH,
        PLOT_HEIGHT,
        bar,
    )


def chart_axes(counts: list[int], peak: int, start: datetime) -> SafeString:
    """The baseline, the count scale (0 and the busiest minute's count) and the
    times under it: the first minute, the middle one and the last."""
    base = PLOT_TOP + PLOT_HEIGHT
    texts = [(PLOT_LEFT - 4, base, "end", "0")]
    if peak:
        texts.append((PLOT_LEFT - 4, PLOT_TOP + 8, "end", str(peak)))
    last = len(counts) - 1
    for index in sorted({0, len(counts) // 2, last}) if counts else []:
        anchor = "start" if index == 0 else "end" if index == last else "middle"
        x = PLOT_LEFT + SLOT_WIDTH * index + (SLOT_WIDTH if anchor == "end" else 0)
        texts.append((x, base + 15, anchor, clock(start + timedelta(minutes=index))))
    return format_html(
        '<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="currentColor" '
        'stroke-opacity="0.4"/>{}',
        PLOT_LEFT,
        base,
        PLOT_LEFT + SLOT_WIDTH * len(counts),
        base,
        format_html_join("", TEXT, texts),
    )


def chart_empty_note(peak: int, width: int) -> SafeString:
    if peak:
        return SafeString("")
    return format_html(
        TEXT,
        (PLOT_LEFT + width) // 2,
        PLOT_TOP + PLOT_HEIGHT // 2,
        "middle",
        "No ops in this hour",
    )


def clock(moment: datetime) -> str:
    """A minute as the admin shows times: in the site's time zone, named."""
    local = timezone.localtime(moment)
    return f"{local:%H:%M} {local.tzname()}"


def board_activity(board: Board, now: datetime) -> SafeString:
    """The board change page's chart, with its total in words under it."""
    counts = ops_per_minute(board, now)
    start = minute_start(now) - timedelta(minutes=len(counts) - 1)
    return format_html(
        "{}<p>{} ops in the last {} minutes (the last bar is the current minute, "
        "so far). Hover over a bar for its minute.</p>",
        ops_chart_svg(counts, start=start),
        sum(counts),
        len(counts),
    )
