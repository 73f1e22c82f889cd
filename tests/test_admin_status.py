"""The admin's Server status page and each board's activity, as staff see them."""

import re
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser

import pytest
from django.urls import reverse
from django.utils import timezone

from tests.test_admin import seed
from whiteboard import metrics, services
from whiteboard.admin_status import latency, ops_chart_svg, ops_per_minute
from whiteboard.models import Op, Presence

pytestmark = pytest.mark.django_db

STATUS = "/admin/whiteboard/board/server-status/"


class Tables(HTMLParser):
    """The page's tables as staff read them: {caption: [[cell text, ...], ...]}."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.caption: str | None = None
        self.rows: list[list[str]] = []
        self.text: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.caption, self.rows = "", []
        elif tag == "tr":
            self.rows.append([])
        elif tag in {"th", "td", "caption"}:
            self.text = []

    def handle_endtag(self, tag):
        if tag in {"th", "td"} and self.text is not None:
            self.rows[-1].append(" ".join("".join(self.text).split()))
            self.text = None
        elif tag == "caption" and self.text is not None:
            self.caption = " ".join("".join(self.text).split())
            self.text = None
        elif tag == "table":
            self.tables[self.caption] = self.rows

    def handle_data(self, data):
        if self.text is not None:
            self.text.append(data)


def tables(response) -> dict[str, list[list[str]]]:
    assert response.status_code == 200
    parser = Tables()
    parser.feed(response.content.decode())
    return parser.tables


def row_value(page, caption, *keys, default="0"):
    """The last cell of the row of table `caption` whose first cells are `keys`."""
    for row in page[caption]:
        if row[: len(keys)] == list(keys):
            return row[-1]
    return default


def fresh_row(board, sid, *, age=0):
    """A presence row, as a server process keeps for one open connection."""
    return Presence.objects.create(
        board=board,
        sid=sid,
        name="Ann",
        color="#123456",
        role="editor",
        server="host:1:0000",
        channel_name="specific.x",
        seen_at=timezone.now() - timedelta(seconds=age),
    )


def stale_age():
    """Seconds after which a presence row no longer counts (3 heartbeats)."""
    return 3 * services.current_limits().heartbeat_seconds + 5


def stamp(board, seqs, when):
    """Date the ops holding `seqs` back to `when`, as if committed then."""
    Op.objects.filter(board=board, seq__in=seqs).update(created_at=when)


# == who may see it ================================================================


def test_the_admin_index_links_to_the_server_status_page(admin_client):
    page = admin_client.get("/admin/").content.decode()
    assert reverse("admin:server_status") == STATUS
    assert f'<a href="{STATUS}">Server status</a>' in page


def test_anonymous_visitors_are_sent_to_the_admin_login(client):
    response = client.get(STATUS)
    assert response.status_code == 302
    assert response.url.startswith("/admin/login/?next=")


def test_logged_in_users_who_are_not_staff_are_sent_to_the_admin_login(
    client, django_user_model
):
    client.force_login(django_user_model.objects.create_user("olga", password="x"))
    response = client.get(STATUS)
    assert response.status_code == 302
    assert response.url.startswith("/admin/login/?next=")


def test_staff_need_no_superuser_nor_permission_on_boards(client, django_user_model):
    staff = django_user_model.objects.create_user("sam", password="x", is_staff=True)
    client.force_login(staff)
    assert "Now" in tables(client.get(STATUS))
    assert f'href="{STATUS}"' in client.get("/admin/").content.decode()


# == what /metrics says ============================================================


def test_the_page_shows_committed_ops_refusals_and_closes_as_they_move(admin_client):
    before = tables(admin_client.get(STATUS))
    metrics.committed(["add", "add"])
    metrics.refused("forbidden")
    metrics.closed(4413, by="server")
    after = tables(admin_client.get(STATUS))

    def moved(caption, *keys):
        old = int(row_value(before, caption, *keys))
        return int(row_value(after, caption, *keys)) - old

    assert moved("Ops committed", "add") == 2
    assert moved("Ops committed", "all kinds") == 2
    assert moved("Refusals, by error code", "forbidden") == 1
    assert moved("Closes, by code and by whom", "4413", "slow reader", "server") == 1


def test_the_page_shows_errors_and_says_where_its_times_come_from(admin_client):
    before = tables(admin_client.get(STATUS))
    metrics.layer_error("send")
    metrics.database_error()
    response = admin_client.get(STATUS)
    after = tables(response)
    for name in ("Channel layer errors", "Database errors"):
        old = int(row_value(before, "Errors", name))
        assert int(row_value(after, "Errors", name)) == old + 1
    assert row_value(after, "Now", "Server processes counted") == "1"
    text = " ".join(response.content.decode().split())
    assert "Since the processes started" in text
    assert "upper bound read from the histogram's buckets" in text
    assert [row[0] for row in after["Times"]] == [
        "Commit p50",
        "Commit p99",
        "Broadcast p50",
        "Broadcast p99",
    ]


def test_quantiles_are_read_as_the_bucket_bound_they_fall_under():
    histo = metrics.Histo()
    assert latency(histo, 0.5) == "none observed yet"
    histo = metrics.Histo(
        buckets={0.005: 90, 0.01: 99, 2.5: 100, float("inf"): 100}, count=100
    )
    assert latency(histo, 0.5) == "≤ 5 ms"
    assert latency(histo, 0.99) == "≤ 10 ms"
    assert latency(histo, 1.0) == "≤ 2.5 s"
    slow = metrics.Histo(buckets={10: 1, float("inf"): 4}, count=4)
    assert latency(slow, 0.5) == "over 10 s"


# == what the database says ========================================================


def test_ops_per_second_counts_the_last_minute_of_every_board(admin_client):
    team = services.board_create(slug="team", title="Team")
    plans = services.board_create(slug="plans", title="Plans")
    seed(team, "a", "b", "c")
    seed(plans, "d", "e")
    stamp(team, [1], timezone.now() - timedelta(minutes=2))
    page = tables(admin_client.get(STATUS))
    assert row_value(page, "Cluster", "Ops committed in the last minute") == "4"
    assert row_value(page, "Cluster", "Ops per second, last minute") == "0.07"


def test_an_op_of_several_seqs_counts_each(admin_client):
    board = services.board_create(slug="team", title="Team")
    Op.objects.create(
        board=board, seq=1, last_seq=5, cid="c1", kind="add", by="x", actor="a"
    )
    page = tables(admin_client.get(STATUS))
    assert row_value(page, "Cluster", "Ops committed in the last minute") == "5"


def test_live_connections_and_the_busiest_boards_link_to_their_pages(admin_client):
    busy = services.board_create(slug="busy", title="<script>alert(1)</script>")
    quiet = services.board_create(slug="quiet", title="Quiet")
    for n in range(3):
        fresh_row(busy, f"busy-{n}")
    fresh_row(quiet, "quiet-0")
    fresh_row(quiet, "quiet-gone", age=stale_age())
    response = admin_client.get(STATUS)
    page = tables(response)
    assert row_value(page, "Cluster", "Live connections") == "4"
    assert page["Busiest boards, by live connections"] == [
        ["<script>alert(1)</script> (busy)", "3"],
        ["Quiet (quiet)", "1"],
    ]
    html = response.content.decode()
    assert "<script>alert(1)" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    for board in (busy, quiet):
        url = reverse("admin:whiteboard_board_change", args=[board.pk])
        assert f'href="{url}"' in html


def test_the_busiest_list_stops_at_ten(admin_client):
    for n in range(12):
        board = services.board_create(slug=f"b{n}", title=f"Board {n}")
        fresh_row(board, f"sid-{n}")
    page = tables(admin_client.get(STATUS))
    assert len(page["Busiest boards, by live connections"]) == 10
    assert row_value(page, "Cluster", "Live connections") == "12"


# == a board's change page =========================================================


def change_page(admin_client, board) -> str:
    url = reverse("admin:whiteboard_board_change", args=[board.pk])
    response = admin_client.get(url)
    assert response.status_code == 200
    return response.content.decode()


def readonly(html, field) -> str:
    found = re.search(
        rf'field-{field}.*?<div class="readonly">(.*?)</div>\s*</div>', html, re.S
    )
    assert found, field
    return found.group(1)


def svg_bars(svg) -> list[tuple[str, float]]:
    """(hover text, bar height) of each minute with a bar, oldest first."""
    minutes = re.findall(r'<g class="minute"><title>(.*?)</title>(.*?)</g>', svg)
    bars = []
    for title, body in minutes:
        height = re.search(r'class="bar"[^>]* height="([\d.]+)"', body)
        if height:
            bars.append((title, float(height.group(1))))
    return bars


def test_a_board_page_shows_its_live_connections(admin_client):
    board = services.board_create(slug="team", title="Team")
    other = services.board_create(slug="other", title="Other")
    fresh_row(board, "one")
    fresh_row(board, "two")
    fresh_row(board, "gone", age=stale_age())
    fresh_row(other, "elsewhere")
    assert readonly(change_page(admin_client, board), "live_connections") == "2"


def test_a_board_page_charts_the_ops_of_each_minute_of_the_last_hour(admin_client):
    board = services.board_create(slug="team", title="<script>alert(1)</script>")
    seed(board, *"abcdefg")
    minute = timezone.now().replace(second=0, microsecond=0)
    stamp(board, [1], minute - timedelta(hours=2))  # outside the hour
    stamp(board, [2, 3], minute - timedelta(minutes=10, seconds=-5))
    stamp(board, [4, 5, 6, 7], minute - timedelta(minutes=3, seconds=-5))
    svg = readonly(change_page(admin_client, board), "activity")
    assert svg.startswith("<svg")
    assert svg.count("<title>") == 60
    first, second = (minute - timedelta(minutes=n) for n in (10, 3))
    assert svg_bars(svg) == [
        (f"{first:%H:%M} UTC: 2 ops", 50.0),
        (f"{second:%H:%M} UTC: 4 ops", 100.0),
    ]
    assert "6 ops in the last 60 minutes" in svg
    assert "script" not in svg  # nothing of the board is drawn


def test_a_board_being_added_has_no_activity_yet(admin_client):
    response = admin_client.get(reverse("admin:whiteboard_board_add"))
    assert response.status_code == 200
    html = response.content.decode()
    assert "ops-chart" not in html
    assert "field-live_connections" not in html


# == the chart and its query =======================================================

START = datetime(2025, 3, 1, 14, 0, tzinfo=UTC)


def test_the_chart_has_a_titled_slot_per_minute_and_proportional_bars():
    counts = [0] * 60
    counts[0], counts[30], counts[59] = 1, 4, 2
    svg = ops_chart_svg(counts, start=START)
    assert svg.count('<g class="minute">') == 60
    assert svg_bars(svg) == [
        ("14:00 UTC: 1 op", 25.0),
        ("14:30 UTC: 4 ops", 100.0),
        ("14:59 UTC: 2 ops", 50.0),
    ]
    assert "<title>14:01 UTC: 0 ops</title>" in svg
    # Axis labels: the scale and the first, middle and last minutes.
    for label in (">0<", ">4<", ">14:00 UTC<", ">14:30 UTC<", ">14:59 UTC<"):
        assert label in svg
    assert "<script" not in svg


def test_a_chart_of_no_ops_draws_only_its_baseline():
    svg = ops_chart_svg([0] * 60, start=START)
    assert svg.count('<g class="minute">') == 60
    assert 'class="bar"' not in svg
    assert svg.count("<line") == 1
    assert "No ops in this hour" in svg


def test_ops_per_minute_buckets_the_seqs_of_one_board_by_clock_minute(
    django_assert_num_queries,
):
    board = services.board_create(slug="team", title="Team")
    other = services.board_create(slug="other", title="Other")
    seed(board, "a", "b", "c")
    Op.objects.create(board=board, seq=4, last_seq=6, cid="multi", kind="add")
    seed(other, "x")
    now = datetime(2025, 3, 1, 14, 30, 20, tzinfo=UTC)
    stamp(board, [1], now - timedelta(hours=1, minutes=5))
    stamp(board, [2], datetime(2025, 3, 1, 13, 31, 59, tzinfo=UTC))
    stamp(board, [3, 4], datetime(2025, 3, 1, 14, 30, 1, tzinfo=UTC))
    with django_assert_num_queries(1):
        counts = ops_per_minute(board, now)
    assert len(counts) == 60
    assert counts[0] == 1  # 13:31, the first minute of the chart
    assert counts[59] == 1 + 3  # 14:30: seq 3, and the op of seqs 4 to 6
    assert sum(counts) == 5
