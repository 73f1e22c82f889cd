"""The history page and its JSON (whiteboard/history_page.py): ops newest
first in bounded pages, one element's ops (exact ids), the seq at a time, and
the board page's access rules."""

import datetime
import json
import re

import pytest
from django.urls import reverse
from django.utils import timezone

from tests.test_services import ANN, BOB, add, commit, delete, rect, simple, update
from whiteboard import history_page, services
from whiteboard import protocol as p
from whiteboard.models import Membership, Op, ShareLink

pytestmark = pytest.mark.django_db

LIMITS = p.Limits(max_elements=50)


def adds(board, *ids, author=ANN):
    for element_id in ids:
        request = add(rect(element_id), author=author, limits=LIMITS)
        result = commit(board, request, limits=LIMITS)
        assert result.outcomes[0].error is None, result.outcomes[0].error
    board.refresh_from_db()


def ok(board, *requests):
    result = commit(board, *requests, limits=LIMITS)
    assert [o.error for o in result.outcomes] == [None] * len(requests)
    board.refresh_from_db()


def history(client, board, **params):
    return client.get(reverse("whiteboard:history_json", args=[board.slug]), params)


def answer(client, board, **params):
    response = history(client, board, **params)
    assert response.status_code == 200, response.content
    return response.json()


@pytest.fixture
def board(db):
    return services.board_create(slug="hist", title="History board")


@pytest.fixture
def private(make_user):
    owner = make_user("olga")
    board = services.board_create(
        slug="secret", title="Secret", owner=owner, is_public=False
    )
    adds(board, "s1", "s2")
    return board


# -- the ops, newest first -----------------------------------------------------------


def test_ops_come_newest_first_in_pages_with_next_before(client, board):
    adds(board, "e1", "e2", "e3", "e4", "e5")
    first = answer(client, board, limit=2)
    assert [op["seq"] for op in first["ops"]] == [5, 4]
    assert first["next_before"] == 4
    assert (first["seq"], first["history_from"]) == (5, 0)
    second = answer(client, board, limit=2, before=first["next_before"])
    assert [op["seq"] for op in second["ops"]] == [3, 2]
    last = answer(client, board, limit=2, before=second["next_before"])
    assert [op["seq"] for op in last["ops"]] == [1]
    assert last["next_before"] is None
    # Exactly a page's worth left: no next page.
    assert answer(client, board, limit=5)["next_before"] is None
    assert answer(client, board, before=1)["ops"] == []

    [op] = answer(client, board, limit=1)["ops"]
    assert {k: op[k] for k in ("seq", "last_seq", "kind", "by", "ids")} == {
        "seq": 5,
        "last_seq": 5,
        "kind": "add",
        "by": "Ann",
        "ids": ["e5"],
    }
    assert "all" not in op
    stored = Op.objects.get(board=board, seq=5).created_at
    assert datetime.datetime.fromisoformat(op["time"]) == stored


def test_limit_defaults_to_a_page_and_is_cut_to_the_maximum(client, board):
    ok(board, *(add(rect(f"e{n}"), limits=LIMITS) for n in range(30)))
    assert len(answer(client, board)["ops"]) == 30
    assert len(answer(client, board, limit=10**6)["ops"]) == 30
    # Paged in one big batch: 30 rows, one per seq; none is read twice.
    seqs, before = [], None
    while before != -1:
        page = answer(client, board, limit=7, **({"before": before} if before else {}))
        seqs += [op["seq"] for op in page["ops"]]
        before = page["next_before"] if page["next_before"] is not None else -1
    assert seqs == list(range(30, 0, -1))
    assert history_page.MAX_LIMIT == 200


def test_each_kind_of_op_names_the_elements_it_touched(client, board):
    adds(board, "a", "b", "c")
    ok(board, update("a", ANN, x=5))
    ok(board, delete("b", "c"))
    ok(board, simple("clear", BOB))
    ok(board, simple("undo", BOB))  # brings a back: one op, an add entry
    ops = answer(client, board)["ops"]
    described = [(op["kind"], op["ids"], op.get("all", False)) for op in ops]
    assert described == [
        ("undo", ["a"], False),
        ("clear", [], True),
        ("delete", ["b", "c"], False),
        ("update", ["a"], False),
        ("add", ["c"], False),
        ("add", ["b"], False),
        ("add", ["a"], False),
    ]
    assert [op["by"] for op in ops[:2]] == ["Bob", "Bob"]


def test_a_page_costs_the_same_few_queries_however_long_the_log(
    client, board, django_assert_max_num_queries
):
    ok(board, *(add(rect(f"e{n}"), limits=LIMITS) for n in range(40)))
    for params in ({"limit": 5}, {"element": "e3"}, {"time": "2000-01-01T00:00Z"}):
        with django_assert_max_num_queries(8):
            history(client, board, **params)


# -- one element's ops ---------------------------------------------------------------


def test_element_filter_is_exact_not_a_substring(client, board):
    adds(board, "a", "ab")  # 1, 2
    ok(board, update("ab", ANN, x=1))  # 3
    ok(board, update("a", ANN, x=2))  # 4
    ok(board, delete("ab"))  # 5
    ok(board, delete("a"))  # 6
    got = answer(client, board, element="a")
    assert [op["seq"] for op in got["ops"]] == [6, 4, 1]
    assert got["next_before"] is None and got["element"] == "a"
    assert [op["seq"] for op in answer(client, board, element="ab")["ops"]] == [
        5,
        3,
        2,
    ]
    # Ids that other fields hold, or that differ only in case: no element's.
    assert answer(client, board, element="Ann")["ops"] == []
    assert answer(client, board, element="A")["ops"] == []
    assert answer(client, board, element="b")["ops"] == []


def test_element_ops_are_paged_and_each_request_scans_a_bounded_stretch(
    client, board, monkeypatch
):
    monkeypatch.setattr(history_page, "SCAN_SEQS", 3)
    adds(board, "x", "y1", "y2", "y3", "y4", "y5", "y6")  # 1..7
    ok(board, update("x", ANN, x=3))  # 8
    ok(board, update("x", ANN, x=4))  # 9
    first = answer(client, board, element="x", limit=1)
    assert [op["seq"] for op in first["ops"]] == [9]
    assert first["next_before"] == 9
    second = answer(client, board, element="x", before=9)
    # Seqs 6..8 scanned: 8 found; the next stretch starts below 6.
    assert [op["seq"] for op in second["ops"]] == [8]
    assert second["next_before"] == 6
    third = answer(client, board, element="x", before=6)
    assert third["ops"] == [] and third["next_before"] == 3
    fourth = answer(client, board, element="x", before=3)
    assert [op["seq"] for op in fourth["ops"]] == [1]
    assert fourth["next_before"] is None


def test_after_compaction_element_and_op_pages_end_at_history_from(client, board):
    adds(board, "a", "b", "c", "d")
    board.history_from = 2  # as compaction leaves it: ops up to 2 dropped
    board.save()
    Op.objects.filter(board=board, last_seq__lte=2).delete()
    assert [op["seq"] for op in answer(client, board)["ops"]] == [4, 3]
    got = answer(client, board, element="a")
    assert got["ops"] == [] and got["next_before"] is None
    assert answer(client, board, element="c")["ops"][0]["seq"] == 3


# -- by time -------------------------------------------------------------------------


def test_time_gives_the_last_seq_committed_at_or_before_it(client, board):
    adds(board, "e1", "e2")
    ok(board, add(rect("e3"), limits=LIMITS), add(rect("e4"), limits=LIMITS))
    ok(board, simple("clear"))
    base = timezone.now().replace(microsecond=0) - datetime.timedelta(days=1)
    for op in Op.objects.filter(board=board):
        Op.objects.filter(pk=op.pk).update(
            created_at=base + datetime.timedelta(minutes=op.seq)
        )
    seqs = list(Op.objects.filter(board=board).order_by("seq").values_list("seq"))
    assert [s for (s,) in seqs] == [1, 2, 3, 4, 5]  # e3, e4: one batch, two ops

    def at(moment):
        return answer(client, board, time=moment.isoformat())["seq"]

    minute = datetime.timedelta(minutes=1)
    assert at(base) == 0
    assert at(base + minute) == 1  # exactly when op 1 was committed
    assert at(base + 2.5 * minute) == 2
    assert at(base + 4 * minute + datetime.timedelta(seconds=59)) == 4
    assert at(base + 10 * minute) == 5
    assert at(base + 10_000 * minute) == 5
    # Naive times are the site's (UTC); "Z" works too.
    naive = (base + 3 * minute).replace(tzinfo=None).isoformat()
    assert answer(client, board, time=naive)["seq"] == 3
    zulu = (base + 3 * minute).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert answer(client, board, time=zulu)["seq"] == 3


def test_time_on_a_compacted_board_answers_history_from_before_its_ops(client, board):
    adds(board, "a", "b", "c")
    board.history_from = 1
    board.save()
    Op.objects.filter(board=board, seq=1).delete()
    assert answer(client, board, time="2000-01-01T00:00:00Z")["seq"] == 1
    assert answer(client, board, time="2999-01-01T00:00:00Z")["seq"] == 3


def test_time_on_a_board_without_ops(client, board):
    assert answer(client, board, time="2000-01-01T00:00:00Z")["seq"] == 0
    got = answer(client, board)
    assert got["ops"] == [] and got["next_before"] is None and got["seq"] == 0


# -- bad parameters ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"before": "abc"}, "bad_seq"),
        ({"before": "-1"}, "bad_seq"),
        ({"before": "1e3"}, "bad_seq"),
        ({"limit": "0"}, "bad_limit"),
        ({"limit": "ten"}, "bad_limit"),
        ({"limit": "-5"}, "bad_limit"),
        ({"element": ""}, "bad_element"),
        ({"element": "a b"}, "bad_element"),
        ({"element": 'a"'}, "bad_element"),
        ({"element": "%"}, "bad_element"),
        ({"element": "x" * 65}, "bad_element"),
        ({"element": "a", "before": "x"}, "bad_seq"),
        ({"time": "yesterday"}, "bad_time"),
        ({"time": "2024-13-40T00:00"}, "bad_time"),
        ({"time": ""}, "bad_time"),
    ],
)
def test_a_bad_parameter_is_400_with_its_code(client, board, params, code):
    adds(board, "a")
    response = history(client, board, **params)
    assert response.status_code == 400
    assert response.json()["error"] == code
    assert response.json()["message"]


# -- access --------------------------------------------------------------------------


def page(client, board, **params):
    return client.get(reverse("whiteboard:history", args=[board.slug]), params)


def test_a_private_boards_history_asks_a_guest_to_log_in(client, private):
    response = page(client, private)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))
    assert f"next=/b/{private.slug}/history/" in response["Location"]
    response = history(client, private)
    assert response.status_code == 401
    assert response.json()["error"] == "login_required"


def test_a_non_member_is_refused(client, private, make_user):
    client.force_login(make_user("nina"))
    response = page(client, private)
    assert response.status_code == 403
    assert "Secret" not in response.content.decode()
    assert history(client, private).status_code == 403
    assert history(client, private, element="s1").status_code == 403
    assert history(client, private, time="2000-01-01T00:00Z").status_code == 403


def test_an_unknown_board_is_404(client, db):
    missing = type("B", (), {"slug": "nowhere"})()
    assert page(client, missing).status_code == 404
    assert history(client, missing).status_code == 404


def test_a_share_key_in_these_urls_is_not_taken(client, private):
    link = ShareLink(board=private, role="viewer")
    key = ShareLink.new_key()
    link.set_key(key)
    link.save()
    response = page(client, private, key=key)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))
    assert key not in response["Location"]
    assert history(client, private, key=key).status_code == 401
    assert "board_keys" not in client.session
    # Through the board page, the key lands in the session: then it counts.
    client.get(reverse("whiteboard:board", args=[private.slug]), {"key": key})
    assert page(client, private).status_code == 200
    assert history(client, private).status_code == 200


def test_a_viewer_reads_the_history_without_a_restore_button(
    client, private, make_user
):
    viewer = make_user("vera")
    Membership.objects.create(board=private, user=viewer, role="viewer")
    client.force_login(viewer)
    response = page(client, private)
    assert response.status_code == 200
    text = response.content.decode()
    assert 'id="restore"' not in text and "restore-form" not in text
    config = page_config(text)
    assert config["canRestore"] is False and config["role"] == "viewer"
    assert (config["seq"], config["historyFrom"]) == (2, 0)
    assert [op["seq"] for op in answer(client, private)["ops"]] == [2, 1]
    assert [op["seq"] for op in answer(client, private, element="s1")["ops"]] == [1]


def test_the_owner_sees_a_restore_button_that_posts_to_restore(client, private):
    client.force_login(private.owner)
    response = page(client, private)
    assert response.status_code == 200
    text = response.content.decode()
    assert 'id="restore"' in text
    assert f'action="{reverse("whiteboard:restore", args=[private.slug])}"' in text
    assert 'name="csrfmiddlewaretoken"' in text
    config = page_config(text)
    assert config["canRestore"] is True
    assert config["stateUrl"] == f"/b/{private.slug}/state.json"
    assert config["historyUrl"] == f"/b/{private.slug}/history.json"
    # No inline script: the config is JSON, the code a module file.
    scripts = re.findall(r"<script\b[^>]*>", text)
    assert all("src=" in s or 'type="application/json"' in s for s in scripts)


def test_the_board_page_links_to_its_history(client, board):
    response = client.get(reverse("whiteboard:board", args=[board.slug]))
    assert f'href="/b/{board.slug}/history/"' in response.content.decode()


def test_a_restore_shows_in_the_history_as_one_op(client, private):
    ok(private, add(rect("s3"), limits=LIMITS))
    client.force_login(private.owner)
    response = client.post(
        reverse("whiteboard:restore", args=[private.slug]),
        {"seq": 1},
        HTTP_ACCEPT="application/json",
    )
    assert response.status_code == 200, response.content
    assert response.json() == {"restored_to": 1, "seq": 4}
    [op] = answer(client, private, limit=1)["ops"]
    assert (op["kind"], op["seq"], op["last_seq"]) == ("restore", 4, 4)
    assert op["ids"] == ["s2", "s3"]
    assert [o["seq"] for o in answer(client, private, element="s3")["ops"]] == [4, 3]


def page_config(text):
    found = re.search(
        r'<script id="history-config" type="application/json">(.*?)</script>',
        text,
        re.S,
    )
    return json.loads(found[1])


def test_the_page_config_follows_the_board(client, board):
    adds(board, "a", "b")
    config = page_config(page(client, board).content.decode())
    assert config == {
        "slug": "hist",
        "title": "History board",
        "role": "editor",
        "seq": 2,
        "historyFrom": 0,
        "canRestore": False,
        "historyUrl": "/b/hist/history.json",
        "stateUrl": "/b/hist/state.json",
        "restoreUrl": "/b/hist/restore",
        "boardUrl": "/b/hist/",
    }
