"""Who changed what: each board's op log in the admin, the link to it from the
board's page, and each account's recent activity on its user page."""

import html
import json
import re
from datetime import timedelta

import pytest
from django.contrib.admin.templatetags.admin_list import result_headers, results
from django.contrib.auth.models import Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from django.utils.html import strip_tags

from tests.test_admin import rect
from tests.test_admin_status import readonly
from whiteboard import protocol as p
from whiteboard import services
from whiteboard.changes import OpRequest
from whiteboard.identity import Author
from whiteboard.models import Op

pytestmark = pytest.mark.django_db

OPLOG = "/admin/whiteboard/op/"
GUEST = Author(sid="fox-conn", by="Fox (guest)", actor="session:fox")


def as_user(user, name):
    """The author of ops from `user`'s connection, stamped with `name`."""
    sid = f"{user.username}-conn"
    return Author(sid=sid, by=name, actor=f"user:{user.pk}", user_id=user.pk)


def commit(board, author, *ops):
    """Commit `ops` (protocol op dataclasses) as `author`'s connection would."""
    requests = [OpRequest(op.cid, kind_of(op), author, op) for op in ops]
    limits = services.current_limits()
    result = services.ops_commit(board_id=board.pk, requests=requests, limits=limits)
    assert all(o.error is None for o in result.outcomes), result.outcomes
    return result


def kind_of(op):
    return type(op).__name__.removesuffix("Op").lower()


def add(eid, cid=None):
    element = rect(eid) | {"color": "#000000", "width": 1}
    element = p.validate_element(element, services.current_limits())
    return p.AddOp(cid or f"cid-add-{eid}", element)


@pytest.fixture
def olga(django_user_model):
    return django_user_model.objects.create_user("olga", "olga@example.com", "x")


@pytest.fixture
def root(django_user_model):
    return django_user_model.objects.create_superuser(
        "root", "root@example.com", "x", first_name="Ada", last_name="Admin"
    )


@pytest.fixture
def team(olga, root):
    """Seqs 1-7 adds by Olga, 8 her delete of all seven, 9-15 her undo of it,
    16 a guest's update, 17 a clear by Ada in the admin."""
    board = services.board_create(slug="team", title="Team board", owner=olga)
    olga_author = as_user(olga, "Olga")
    ids = list("abcdefg")
    commit(board, olga_author, *(add(i) for i in ids))
    commit(board, olga_author, p.DeleteOp("cid-delete-all", tuple(ids)))
    commit(board, olga_author, p.UndoOp("cid-undo-delete"))
    commit(board, GUEST, p.UpdateOp("cid-fox-moves-a", "a", {"x": 5}))
    services.board_clear(board=board, user=root, limits=services.current_limits())
    board.refresh_from_db()
    return board


@pytest.fixture
def plans(olga):
    board = services.board_create(slug="plans", title="Secret plans")
    commit(board, as_user(olga, "Olga"), add("p1", "cid-plans-p1"))
    commit(board, GUEST, add("p2", "cid-plans-p2"))
    return board


def rows(http, query=""):
    """The changelist as staff read it: a dict per row, keyed by column title."""
    response = http.get(OPLOG + query)
    assert response.status_code == 200
    cl = response.context["cl"]
    headers = [strip_tags(h["text"]).strip() for h in result_headers(cl)]
    return [
        dict(zip(headers, (text(cell) for cell in row), strict=True))
        for row in results(cl)
    ]


def text(cell):
    """A cell's text as the browser shows it."""
    return re.sub(r"\s+", " ", html.unescape(strip_tags(cell))).strip()


def columns(http, query="", *names):
    return [tuple(row[name] for name in names) for row in rows(http, query)]


def view_only_staff(django_user_model, username="vera", *codenames):
    user = django_user_model.objects.create_user(username, is_staff=True)
    for codename in codenames:
        user.user_permissions.add(Permission.objects.get(codename=codename))
    return user


# == the list ========================================================================


def test_the_op_log_lists_each_op_newest_first_with_seqs_kind_author_elements(
    admin_client, team
):
    listed = rows(admin_client)
    assert list(listed[0]) == [
        "time",
        "board",
        "seq",
        "kind",
        "author",
        "elements touched",
    ]
    assert [
        (r["seq"], r["kind"], r["author"], r["elements touched"]) for r in listed
    ] == [
        ("17", "clear", "Ada Admin (root)", "all"),
        ("16", "update", "Fox (guest)", "a"),
        ("9–15", "undo", "Olga (olga)", "a, b, c, d, e +2 more"),
        ("8", "delete", "Olga (olga)", "a, b, c, d, e +2 more"),
        ("7", "add", "Olga (olga)", "g"),
        ("6", "add", "Olga (olga)", "f"),
        ("5", "add", "Olga (olga)", "e"),
        ("4", "add", "Olga (olga)", "d"),
        ("3", "add", "Olga (olga)", "c"),
        ("2", "add", "Olga (olga)", "b"),
        ("1", "add", "Olga (olga)", "a"),
    ]
    assert {r["board"] for r in listed} == {"Team board (team)"}
    stamp = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC")
    assert all(stamp.fullmatch(r["time"]) for r in listed), listed[0]["time"]
    page = admin_client.get(OPLOG).content.decode()
    board_url = reverse("admin:whiteboard_board_change", args=[team.pk])
    assert f'<a href="{board_url}">Team board (team)</a>' in page
    # Each row opens its op; nothing can be selected for an action.
    first = Op.objects.get(board=team, seq=17)
    assert f'href="{reverse("admin:whiteboard_op_change", args=[first.pk])}' in page
    assert "action-checkbox" not in page


@pytest.mark.usefixtures("team", "plans")
@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("?kind=add", [("plans", "add")] * 2 + [("team", "add")] * 7),
        ("?kind=clear", [("team", "clear")]),
        ("?kind=redo", []),
        ("?q=fox", [("plans", "add"), ("team", "update")]),
        ("?q=secret", [("plans", "add")] * 2),
        ("?q=cid-undo-delete", [("team", "undo")]),
    ],
)
def test_filters_and_search_narrow_the_list(admin_client, query, expected):
    listed = [
        (r["board"].split("(")[-1].rstrip(")"), r["kind"])
        for r in rows(admin_client, query)
    ]
    assert listed == expected


def test_the_date_filter_narrows_the_list_to_recent_ops(admin_client, team):
    Op.objects.filter(board=team, seq__lte=3).update(
        created_at=timezone.now() - timedelta(days=30)
    )
    page = admin_client.get(OPLOG).content.decode()
    week = re.search(r'<a href="(\?created_at__gte=[^"]*)">Past 7 days</a>', page)
    assert week, "no date filter"
    listed = columns(admin_client, html.unescape(week.group(1)), "seq")
    assert listed[-1] == ("4",)
    assert len(listed) == 11 - 3


def test_the_author_and_board_filters_list_only_who_and_what_has_ops(
    admin_client, team, plans, olga, root, django_user_model
):
    django_user_model.objects.create_user("idle")
    services.board_create(slug="empty", title="Empty board")
    page = admin_client.get(OPLOG).content.decode()
    author = f"?author__id__exact={olga.pk}"
    assert f'href="{author}"' in page
    assert f'href="?author__id__exact={root.pk}"' in page
    assert "idle" not in page
    assert f'href="?board__id__exact={plans.pk}"' in page
    assert "Empty board" not in page

    mine = columns(admin_client, author, "board", "author")
    assert len(mine) == 1 + 7 + 1 + 1  # plans' p1; team's adds, delete, undo
    assert set(mine) == {
        ("Secret plans (plans)", "Olga (olga)"),
        ("Team board (team)", "Olga (olga)"),
    }
    guests = columns(admin_client, "?author__isnull=True", "seq", "author")
    assert guests == [("2", "Fox (guest)"), ("16", "Fox (guest)")]
    on_plans = columns(admin_client, f"?board__id__exact={plans.pk}", "seq", "kind")
    assert on_plans == [("2", "add"), ("1", "add")]
    both = f"?board__id__exact={plans.pk}&author__id__exact={olga.pk}"
    assert columns(admin_client, both, "seq") == [("1",)]


def test_a_page_of_the_log_costs_the_same_queries_whatever_its_length(
    admin_client, olga
):
    """No query per row, and no count of the whole table besides the
    paginator's (show_full_result_count is off)."""
    board = services.board_create(slug="big", title="Big")
    commit(board, as_user(olga, "Olga"), *(add(f"e{n}") for n in range(3)))
    with CaptureQueriesContext(connection) as few:
        assert len(rows(admin_client)) == 3
    commit(board, as_user(olga, "Olga"), *(add(f"e{n}") for n in range(3, 60)))
    with CaptureQueriesContext(connection) as many:
        listed = rows(admin_client)
    assert len(listed) == 50  # a page
    assert len(many.captured_queries) == len(few.captured_queries)
    counts = [q["sql"] for q in many.captured_queries if "COUNT(" in q["sql"]]
    assert len(counts) == 1, counts
    response = admin_client.get(OPLOG)
    assert "60 ops" in response.content.decode()  # the paginator's count


# == one op ============================================================================


def test_an_op_page_shows_its_entries_pretty_printed_and_every_id(admin_client, team):
    undo = Op.objects.get(board=team, kind="undo")
    response = admin_client.get(reverse("admin:whiteboard_op_change", args=[undo.pk]))
    assert response.status_code == 200
    page = response.content.decode()
    pre = re.search(r'<pre class="op-entries">(.*?)</pre>', page, re.S).group(1)
    text = html.unescape(pre)
    assert json.loads(text) == json.loads(undo.entries)
    assert '\n  {\n    "op": "add",\n    "seq": 9,' in text
    assert strip_tags(readonly(page, "elements_all")) == "a, b, c, d, e, f, g"
    assert strip_tags(readonly(page, "seqs")) == "9–15"
    assert strip_tags(readonly(page, "who")) == "Olga (olga)"
    assert readonly(page, "actor").strip() == f"user:{team.owner_id}"
    # Read-only: no form to save, no delete link.
    assert 'name="_save"' not in page
    assert "deletelink" not in page


# == escaping ========================================================================


def test_titles_names_and_ids_are_escaped_everywhere(admin_client, olga):
    board = services.board_create(slug="xss", title="<script>alert(1)</script>")
    entries = [
        {"op": "delete", "seq": 1, "cid": "c", "sid": None, "by": "x"}
        | {"ids": ["<img src=x onerror=alert(2)>"]}
    ]
    op = Op.objects.create(
        board=board,
        seq=1,
        last_seq=1,
        cid="<b>cid</b>",
        kind="delete",
        author=olga,
        by="<script>alert(3)</script>",
        actor="conn:x",
        entries=json.dumps(entries),
    )
    olga.username = "<i>olga</i>"
    olga.save()
    pages = {
        "list": admin_client.get(OPLOG).content.decode(),
        "op": admin_client.get(
            reverse("admin:whiteboard_op_change", args=[op.pk])
        ).content.decode(),
        "user": admin_client.get(
            reverse("admin:auth_user_change", args=[olga.pk])
        ).content.decode(),
    }
    for name, page in pages.items():
        assert "<script>alert" not in page, name
        assert "<img src=x" not in page, name
        assert "<i>olga" not in page, name
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page, name
    assert (
        "&lt;script&gt;alert(3)&lt;/script&gt; (&lt;i&gt;olga&lt;/i&gt;)"
        in (pages["list"])
    )
    assert "<code>&lt;img src=x onerror=alert(2)&gt;</code>" in pages["list"]
    assert "&lt;b&gt;cid&lt;/b&gt;" in pages["op"]
    assert "&lt;img src=x onerror=alert(2)&gt;" in pages["op"]
    assert rows(admin_client)[0]["elements touched"] == "<img src=x onerror=alert(2)>"


def test_entries_that_are_not_json_are_shown_as_stored(admin_client):
    board = services.board_create(slug="odd", title="Odd")
    op = Op.objects.create(
        board=board, seq=1, last_seq=3, cid="odd-cid", kind="add", by="x",
        actor="conn:x", entries="<not json>",
    )  # fmt: skip
    assert columns(admin_client, "", "seq", "elements touched") == [("1–3", "-")]
    page = admin_client.get(reverse("admin:whiteboard_op_change", args=[op.pk]))
    assert '<pre class="op-entries">&lt;not json&gt;</pre>' in page.content.decode()


# == nobody changes the log ========================================================


def test_nobody_can_add_change_or_delete_ops(admin_client, team):
    op = Op.objects.get(board=team, seq=16)
    before = Op.objects.filter(pk=op.pk).values().get()
    assert admin_client.get(reverse("admin:whiteboard_op_add")).status_code == 403
    assert admin_client.post(reverse("admin:whiteboard_op_add"), {}).status_code == 403
    change = reverse("admin:whiteboard_op_change", args=[op.pk])
    forged = {"kind": "clear", "by": "Someone else", "entries": "[]", "_save": "1"}
    assert admin_client.post(change, forged).status_code == 403
    delete = reverse("admin:whiteboard_op_delete", args=[op.pk])
    assert admin_client.get(delete).status_code == 403
    assert admin_client.post(delete, {"post": "yes"}).status_code == 403
    bulk = {"action": "delete_selected", "_selected_action": [op.pk], "post": "yes"}
    admin_client.post(OPLOG, bulk)
    assert Op.objects.filter(pk=op.pk).values().get() == before
    assert Op.objects.filter(board=team).count() == 13 - 2  # 17 seqs in 11 ops
    index = admin_client.get("/admin/").content.decode()
    assert f'href="{OPLOG}"' in index
    assert "/admin/whiteboard/op/add/" not in index


def test_deleting_a_board_still_takes_its_ops_with_it(admin_client, team, plans):
    """The op log refuses deleting an op on its own, not deleting its board."""
    url = reverse("admin:whiteboard_board_delete", args=[team.pk])
    confirm = admin_client.get(url)
    assert confirm.status_code == 200
    assert "Ops: 11" in " ".join(strip_tags(confirm.content.decode()).split())
    assert admin_client.post(url, {"post": "yes"}).status_code == 302
    assert not Op.objects.filter(board_id=team.pk).exists()
    assert Op.objects.filter(board=plans).count() == 2


def test_staff_need_the_view_permission_and_others_are_sent_to_login(
    client, team, django_user_model
):
    client.force_login(view_only_staff(django_user_model, "vera", "view_op"))
    assert len(rows(client)) == 11
    op = Op.objects.get(board=team, seq=17)
    change = reverse("admin:whiteboard_op_change", args=[op.pk])
    assert client.get(change).status_code == 200
    assert client.post(change, {"kind": "add"}).status_code == 403
    assert client.get(reverse("admin:whiteboard_op_add")).status_code == 403

    client.force_login(view_only_staff(django_user_model, "sam"))
    assert client.get(OPLOG).status_code == 403

    client.force_login(django_user_model.objects.create_user("nina"))
    for url in (OPLOG, change):
        response = client.get(url)
        assert response.status_code == 302
        assert response.url.startswith("/admin/login/?next=")
    client.logout()
    assert client.get(OPLOG).url.startswith("/admin/login/?next=")


# == from a board's page ===========================================================


def test_a_board_page_links_to_its_op_log_with_its_number_of_seqs(
    admin_client, team, plans
):
    url = reverse("admin:whiteboard_board_change", args=[team.pk])
    page = admin_client.get(url).content.decode()
    field = readonly(page, "op_log")
    link = f"{OPLOG}?board__id__exact={team.pk}"
    assert field == f'<a href="{link}">View the op log</a> (17 seqs)'
    listed = columns(admin_client, link.removeprefix(OPLOG), "board")
    assert set(listed) == {("Team board (team)",)}
    assert len(listed) == 11

    empty = services.board_create(slug="empty", title="Empty")
    url = reverse("admin:whiteboard_board_change", args=[empty.pk])
    field = readonly(admin_client.get(url).content.decode(), "op_log")
    assert field.endswith("(no ops yet)")


def test_the_board_page_has_no_op_log_link_for_staff_who_cannot_open_it(
    client, team, django_user_model
):
    url = reverse("admin:whiteboard_board_change", args=[team.pk])
    client.force_login(view_only_staff(django_user_model, "bo", "view_board"))
    page = client.get(url).content.decode()
    assert "field-live_connections" in page
    assert "field-op_log" not in page
    client.force_login(
        view_only_staff(django_user_model, "vi", "view_board", "view_op")
    )
    assert "field-op_log" in client.get(url).content.decode()


def test_a_board_being_added_has_no_op_log_link(admin_client):
    page = admin_client.get(reverse("admin:whiteboard_board_add")).content.decode()
    assert "field-op_log" not in page


# == from an account's page =========================================================


def activity_rows(page):
    table = re.search(r'<table class="recent-activity">(.*?)</table>', page, re.S)
    assert table, "no recent activity table"
    found = re.findall(r"<tr>(.*?)</tr>", table.group(1), re.S)
    cell = re.compile(r"<t[dh]>(.*?)</t[dh]>", re.S)
    cells = [[text(c) for c in cell.findall(row)] for row in found]
    return cells[0], cells[1:]


def test_a_user_page_shows_their_recent_ops_on_every_board(
    admin_client, team, plans, olga
):
    url = reverse("admin:auth_user_change", args=[olga.pk])
    page = admin_client.get(url).content.decode()
    assert "Recent activity" in page
    header, activity = activity_rows(page)
    assert header == ["time", "board", "kind", "seq"]
    assert [row[1:] for row in activity] == [
        ["Secret plans (plans)", "add", "1"],
        ["Team board (team)", "undo", "9–15"],
        ["Team board (team)", "delete", "8"],
        *(["Team board (team)", "add", str(n)] for n in range(7, 0, -1)),
    ]
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\d [\d:]{8} UTC", r[0]) for r in activity)
    for board in (team, plans):
        link = reverse("admin:whiteboard_board_change", args=[board.pk])
        assert f'href="{link}"' in page
    undo = Op.objects.get(board=team, kind="undo")
    assert f'href="{reverse("admin:whiteboard_op_change", args=[undo.pk])}"' in page
    everything = f"{OPLOG}?author__id__exact={olga.pk}"
    assert f'<a href="{everything}">All ops by this account in the op log</a>' in page
    assert len(rows(admin_client, everything.removeprefix(OPLOG))) == 10
    # The rest of Django's user page is as it was.
    for field in ("username", "first_name", "email", "is_staff", "groups"):
        assert f'name="{field}"' in page


def test_recent_activity_stops_at_twenty_and_names_no_one_elses_ops(
    admin_client, olga, root
):
    board = services.board_create(slug="busy", title="Busy")
    commit(board, as_user(olga, "Olga"), *(add(f"o{n}") for n in range(25)))
    commit(board, as_user(root, "Ada Admin"), add("root-1"))
    page = admin_client.get(reverse("admin:auth_user_change", args=[olga.pk]))
    _, activity = activity_rows(page.content.decode())
    assert [row[3] for row in activity] == [str(n) for n in range(25, 5, -1)]
    assert "Last 20 ops, on every board" in page.content.decode()


def test_a_user_without_ops_and_the_add_user_page(admin_client, olga):
    page = admin_client.get(reverse("admin:auth_user_change", args=[olga.pk]))
    assert "No ops yet." in page.content.decode()
    add_page = admin_client.get(reverse("admin:auth_user_add")).content.decode()
    assert "Recent activity" not in add_page
    assert 'name="password1"' in add_page


def test_staff_who_cannot_view_the_op_log_see_no_activity_on_user_pages(
    client, team, olga, django_user_model
):
    client.force_login(view_only_staff(django_user_model, "hr", "view_user"))
    page = client.get(reverse("admin:auth_user_change", args=[olga.pk]))
    assert page.status_code == 200
    assert "Recent activity" not in page.content.decode()
