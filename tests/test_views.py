"""The server's own pages: home, the board page, creating boards, guest rename.

The board page must refuse exactly what its WebSocket refuses, before it shows
anything of the board, and every user-typed string must come out escaped.
"""

import json
import re
import urllib.request

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from whiteboard import services
from whiteboard.models import Board

pytestmark = pytest.mark.django_db

TITLE = '<script>alert("x")</script> & plans'


@pytest.fixture
def owner():
    return get_user_model().objects.create_user("olga", password="pw-olga-123")


@pytest.fixture
def stranger():
    return get_user_model().objects.create_user("sam", password="pw-sam-123")


def board_config(page):
    """The JSON the page hands to its script (json_script), decoded."""
    match = re.search(
        r'<script id="board-config" type="application/json">(.*?)</script>',
        page.content.decode(),
    )
    assert match, "the board page carries its config in a json_script tag"
    return json.loads(match.group(1))


# --- home ------------------------------------------------------------------------


def test_home_lists_public_boards_and_hides_private_ones(client):
    services.board_create(slug="open-plan", title="Open <plan>")
    services.board_create(slug="secret", title="Secret", is_public=False)
    page = client.get("/")
    assert page.status_code == 200
    text = page.content.decode()
    assert 'href="/b/open-plan/"' in text
    assert "Open &lt;plan&gt;" in text, "titles are escaped"
    assert "secret" not in text.lower()


def test_home_lists_a_users_own_boards_private_ones_included(client, owner, stranger):
    services.board_create(
        slug="olgas", title="Olga's <plan>", owner=owner, is_public=False
    )
    services.board_create(slug="sams", title="Sam's", owner=stranger, is_public=False)
    client.force_login(owner)
    text = client.get("/").content.decode()
    assert 'href="/b/olgas/"' in text
    assert "Olga&#x27;s &lt;plan&gt;" in text
    assert "/b/sams/" not in text


def test_home_offers_visibility_only_to_logged_in_users(client, owner):
    assert 'name="visibility"' not in client.get("/").content.decode()
    client.force_login(owner)
    assert 'name="visibility"' in client.get("/").content.decode()


# --- the board page --------------------------------------------------------------


def test_board_page_renders_a_public_board_with_its_config(client):
    services.board_create(slug="team", title="Team")
    page = client.get("/b/team/")
    assert page.status_code == 200
    config = board_config(page)
    assert config["slug"] == "team"
    assert config["wsPath"] == "/ws/boards/team/"
    assert config["guest"] is True
    assert (config["role"], config["locked"]) == ("editor", False)
    assert 'id="board-canvas"' in page.content.decode()


def test_board_page_starts_read_only_for_a_viewer_of_a_locked_board(client):
    board = services.board_create(slug="shown", title="Shown")
    Board.objects.filter(pk=board.pk).update(visitor_role="viewer", locked=True)
    config = board_config(client.get("/b/shown/"))
    assert (config["role"], config["locked"]) == ("viewer", True)


def test_board_page_escapes_the_title_everywhere(client):
    services.board_create(slug="xss", title=TITLE)
    page = client.get("/b/xss/")
    text = page.content.decode()
    assert "<script>alert" not in text
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; plans" in text
    assert board_config(page)["title"] == TITLE, "json_script keeps it as data"


def test_unknown_board_is_404(client):
    assert client.get("/b/no-such-board/").status_code == 404


def test_private_board_sends_anonymous_users_to_log_in(client):
    services.board_create(slug="hidden", title="Hidden plans", is_public=False)
    page = client.get("/b/hidden/")
    assert page.status_code == 302
    assert page["Location"] == "/accounts/login/?next=/b/hidden/"


def test_private_board_is_403_for_another_user_and_shows_nothing_of_it(
    client, owner, stranger
):
    services.board_create(
        slug="hidden", title="Hidden plans", owner=owner, is_public=False
    )
    client.force_login(stranger)
    page = client.get("/b/hidden/")
    assert page.status_code == 403
    assert "Hidden plans" not in page.content.decode()
    assert "board-config" not in page.content.decode()


def test_private_board_opens_for_its_owner_with_a_settings_link(client, owner):
    services.board_create(slug="mine", title="Mine", owner=owner, is_public=False)
    client.force_login(owner)
    page = client.get("/b/mine/")
    assert page.status_code == 200
    assert board_config(page)["guest"] is False
    text = page.content.decode()
    assert 'id="guest-name"' not in text, "no guest rename"
    assert 'href="/b/mine/settings/"' in text


def test_only_the_owner_sees_the_settings_link(client, stranger):
    services.board_create(slug="team", title="Team")
    client.force_login(stranger)
    assert "/b/team/settings/" not in client.get("/b/team/").content.decode()


def test_board_page_tells_the_script_where_to_log_in(client):
    services.board_create(slug="team", title="Team")
    config = board_config(client.get("/b/team/"))
    assert config["loginUrl"] == "/accounts/login/?next=/b/team/"


def test_board_page_stores_no_session_for_a_guest(client):
    # tests/test_sessions.py: a session starts with what a guest keeps.
    services.board_create(slug="team", title="Team")
    client.get("/b/team/")
    assert "sessionid" not in client.cookies


# --- creating and opening boards -------------------------------------------------


def test_creating_a_board_opens_it(client):
    answer = client.post("/boards/new", {"title": "  Sprint   <review> "})
    board = Board.objects.get()
    assert answer.status_code == 302
    assert answer["Location"] == f"/b/{board.slug}/"
    assert board.title == "Sprint <review>"
    assert board.is_public and board.owner is None
    assert board.slug.startswith("sprint-review-"), "readable, plus a random tail"


def test_anonymous_users_cannot_create_private_boards(client):
    client.post("/boards/new", {"title": "T", "visibility": "private"})
    assert Board.objects.get().is_public


def test_logged_in_users_create_private_boards_they_own(client, owner):
    client.force_login(owner)
    client.post("/boards/new", {"title": "", "visibility": "private"})
    board = Board.objects.get()
    assert (board.is_public, board.owner, board.title) == (
        False,
        owner,
        "Untitled board",
    )


def test_creating_a_board_needs_the_csrf_token():
    strict = Client(enforce_csrf_checks=True)
    assert strict.post("/boards/new", {"title": "x"}).status_code == 403
    assert not Board.objects.exists()


@pytest.mark.parametrize(
    "typed",
    ["team-plan", "http://example.org/b/team-plan/", "/b/team-plan", " Team-Plan "],
)
def test_open_accepts_a_link_or_a_slug(client, typed):
    answer = client.post("/open", {"board": typed})
    assert answer["Location"] == "/b/team-plan/"


def test_open_keeps_a_pasted_share_links_key_for_the_board_page(client):
    typed = "https://example.org/b/team-plan/?key=Abc_12-x#top"
    answer = client.post("/open", {"board": typed})
    assert answer["Location"] == "/b/team-plan/?key=Abc_12-x"


def test_open_is_a_post_with_csrf_so_no_key_lands_in_a_url_of_ours(client):
    assert client.get("/open", {"board": "team-plan"}).status_code == 405
    strict = Client(enforce_csrf_checks=True)
    assert strict.post("/open", {"board": "team-plan"}).status_code == 403


def test_open_explains_what_it_cannot_read(client):
    answer = client.post("/open", {"board": "not a board!"}, follow=True)
    assert "not a board link" in answer.content.decode()


# --- guest rename ----------------------------------------------------------------


def rename(client, name):
    return client.post("/me/name", {"name": name}, HTTP_ACCEPT="application/json")


def test_a_guest_renames_themselves_in_the_session(client):
    answer = rename(client, "  Ada  \u200bLovelace\n")
    assert answer.json() == {"name": "Ada Lovelace"}
    assert client.session["guest_name"] == "Ada Lovelace (guest)"
    author, _ = services.connection_author(
        user=None, session=client.session, sid="s1", role="editor"
    )
    assert author.by == "Ada Lovelace (guest)", "the socket shows the marked name"


def test_a_guest_without_a_chosen_name_is_marked_as_one_too():
    author, _ = services.connection_author(
        user=None, session=None, sid="s1", role="editor"
    )
    assert author.by.endswith(" (guest)")


def test_the_rename_form_shows_the_chosen_name_without_the_mark(client):
    services.board_create(slug="team", title="Team")
    rename(client, "Ada")
    assert 'value="Ada"' in client.get("/b/team/").content.decode()


@pytest.mark.parametrize("name", ["", "   ", "\u200b", "x" * 41])
def test_a_bad_guest_name_is_refused_with_a_reason(client, name):
    answer = rename(client, name)
    assert answer.status_code == 400
    assert "1 to 40 characters" in answer.json()["error"]
    assert "guest_name" not in client.session


@pytest.mark.parametrize("name", ["Ada\u0000", "A\u0007da", "Ada\nLove", "\u202eadA"])
def test_a_guest_name_with_control_characters_is_refused(client, name):
    answer = rename(client, name)
    assert answer.status_code == 400
    assert "Control characters" in answer.json()["error"]
    assert "guest_name" not in client.session


@pytest.mark.parametrize("name", ["sam", "SAM", "Sam Smith", " sam\u200b"])
def test_a_guest_cannot_take_a_registered_users_name(client, stranger, name):
    stranger.first_name, stranger.last_name = "Sam", "Smith"
    stranger.save()
    answer = rename(client, name)
    assert answer.status_code == 400
    assert "is the name of a registered user" in answer.json()["error"]
    assert "guest_name" not in client.session


def test_a_plain_form_rename_goes_back_to_the_board(client):
    answer = client.post("/me/name", {"name": "Bo", "next": "/b/team/"})
    assert answer["Location"] == "/b/team/"
    off_site = client.post("/me/name", {"name": "Bo", "next": "https://evil.test/"})
    assert off_site["Location"] == "/"


def test_logged_in_users_cannot_set_a_guest_name(client, owner):
    client.force_login(owner)
    assert rename(client, "Someone").status_code == 400
    assert "guest_name" not in client.session


def test_rename_is_post_only(client):
    assert client.get("/me/name").status_code == 405


# --- static files ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "kind"),
    [("whiteboard/js/board.js", "javascript"), ("whiteboard/board.css", "text/css")],
)
def test_the_project_serves_the_page_files_itself_without_debug(client, path, kind):
    answer = client.get(f"/static/{path}")
    assert answer.status_code == 200
    assert kind in answer["Content-Type"]


def test_the_site_icon_is_served_and_favicon_ico_points_to_it(client):
    assert client.get("/favicon.ico")["Location"] == "/static/whiteboard/favicon.svg"
    assert client.get("/static/whiteboard/favicon.svg").status_code == 200


# --- the real servers serve the page ----------------------------------------------

IMPORT_RE = re.compile(r'from "\./([a-z]+\.js)"')


def fetch(url):
    with urllib.request.urlopen(url, timeout=10) as answer:
        return answer.status, answer.headers.get("Content-Type", ""), answer.read()


@pytest.mark.live
@pytest.mark.parametrize("runserver", [False, True], ids=["daphne", "runserver"])
@pytest.mark.parametrize("debug", ["0", "1"], ids=["debug-off", "debug-on"])
def test_the_server_itself_serves_the_board_page_and_every_module(
    start_server, live_db, runserver, debug
):
    """No collectstatic, no nginx: the page and all its ES modules load."""
    server = start_server(runserver=runserver, DJANGO_DEBUG=debug)
    slug = live_db.create_board()
    status, _, page = fetch(f"{server.origin}/b/{slug}/")
    assert status == 200
    assert b"/static/whiteboard/js/board.js" in page
    pending, seen = ["board.js"], set()
    while pending:
        name = pending.pop()
        seen.add(name)
        status, kind, body = fetch(f"{server.origin}/static/whiteboard/js/{name}")
        assert (status, "javascript" in kind) == (200, True), name
        pending += [m for m in IMPORT_RE.findall(body.decode()) if m not in seen]
    assert len(seen) >= 10, seen
    assert fetch(f"{server.origin}/static/whiteboard/board.css")[0] == 200


def test_link_previews_may_ask_for_the_board_page_with_head(client):
    services.board_create(slug="team", title="Team")
    assert client.head("/b/team/").status_code == 200
