"""Board thumbnails: drawing (whiteboard/thumbnails.py), the cache and its
refresh, serving them with the board page's access rules, and a live daphne
refreshing them in the background."""

import asyncio
import http.client
import io
import json
import time
from asyncio import to_thread
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client
from django.utils import timezone
from PIL import Image

from tests.live import Database, read_state
from whiteboard import protocol as p
from whiteboard import services, thumbnails
from whiteboard.changes import OpRequest
from whiteboard.identity import Author
from whiteboard.models import Board, Role, Thumbnail

W, H = thumbnails.SIZE
RED = (255, 0, 0)
SEEDER = Author(sid="seed-conn", by="Seeder", actor="conn:seed-conn")


def image_of(png):
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG"
    return image.convert("RGB")


def is_red(pixel):
    r, g, b = pixel
    return r > 200 and g < 60 and b < 60


def dark(pixel):
    return sum(pixel) < 300


def pixels(image):
    data = image.tobytes()
    return [tuple(data[n : n + 3]) for n in range(0, len(data), 3)]


def el(kind, **fields):
    base = {"id": f"e-{kind}", "kind": kind, "x": 0, "y": 0, "color": "#000000"}
    return {**base, "width": 2, "fill": None, "opacity": 1, **fields}


def red_rect(eid="r1", x=0, y=0, w=100, h=60):
    return el("rect", id=eid, x=x, y=y, w=w, h=h, color="#ff0000", fill="#ff0000")


# -- drawing -----------------------------------------------------------------------


def test_an_empty_board_is_a_blank_white_image_of_the_size_asked():
    image = image_of(thumbnails.render([]))
    assert image.size == (W, H)
    assert image.getextrema() == ((255, 255),) * 3
    assert image_of(thumbnails.render([], size=(64, 40))).size == (64, 40)


def test_a_filled_rect_is_red_where_it_is_and_the_margin_stays_white():
    image = image_of(thumbnails.render([red_rect(w=300, h=150)]))
    assert is_red(image.getpixel((W // 2, H // 2)))
    for corner in [(0, 0), (W - 1, 0), (0, H - 1), (W - 1, H - 1)]:
        assert image.getpixel(corner) == (255, 255, 255), corner


def test_a_black_stroke_darkens_the_pixels_along_its_path():
    # Box with the stroke's width: (-2, -2)..(202, 102), at scale 1 and
    # centred: board (0, 0) is pixel (60, 50).
    stroke = el("stroke", width=4, points=[[0, 0], [100, 0], [200, 100]])
    image = image_of(thumbnails.render([stroke]))
    for x, y in [(0, 0), (50, 0), (100, 0), (150, 50), (200, 100)]:
        assert dark(image.getpixel((60 + x, 50 + y))), (x, y)
    assert image.getpixel((60 + 50, 50 + 80)) == (255, 255, 255)


def test_lines_ellipses_and_arrow_heads_are_drawn_where_the_page_draws_them():
    elements = [
        el("line", x=0, y=0, points=[[0, 0], [200, 0]], width=3),
        el("ellipse", x=0, y=20, w=200, h=80, color="#0000ff", fill="#00ff00"),
        # An arrow pointing right: its barbs reach 10 px back from the tip.
        el("arrow", x=0, y=120, points=[[0, 0], [200, 0]], width=2),
    ]
    image = image_of(thumbnails.render(elements))
    # The union box: (-11.5, -1.5)..(211.5, 131), scale 1.
    dx, dy = (W - 223) / 2 + 11.5, (H - 132.5) / 2 + 1.5

    def at(x, y):
        return image.getpixel((round(dx + x), round(dy + y)))

    assert dark(at(100, 0)), "the line"
    assert at(100, 60)[1] > 200 and at(100, 60)[0] < 60, "the ellipse's fill"
    left = at(0, 60)
    assert left[2] > 200 and left[0] < 60, "the ellipse's outline"
    assert dark(at(100, 120)), "the arrow's shaft"
    # Near the end of each barb (within a pixel or two: anti-aliasing aside).
    for side in (-1, 1):
        x, y = 200 - 10 * 0.9 * 0.9, 120 + side * 10 * 0.43 * 0.9
        near = [at(x + i, y + j) for i in (-1, 0, 1) for j in (-1, 0, 1)]
        assert any(dark(pixel) for pixel in near), f"the barb on side {side}"
    assert not dark(at(190, 110)) and not dark(at(190, 130)), "short barbs"


def test_opacity_blends_with_what_is_below():
    half = el("rect", w=200, h=100, color="#000000", fill="#000000", opacity=0.5)
    image = image_of(thumbnails.render([half]))
    r, g, b = image.getpixel((W // 2, H // 2))
    assert 100 < r < 160 and r == g == b


def test_text_darkens_some_pixels():
    text = el("text", text="Hello\nboard", size=40, width=1)
    image = image_of(thumbnails.render([text]))
    assert sum(dark(pixel) for pixel in pixels(image)) > 100
    tiny = [text, red_rect(x=0, y=0, w=100000, h=10)]  # text 0.3 px high: bars
    assert sum(dark(pixel) for pixel in pixels(image_of(thumbnails.render(tiny))))


def test_a_note_is_its_colour_with_its_text_wrapped_inside():
    note = {"id": "n1", "kind": "note", "x": 0, "y": 0, "w": 200, "h": 120}
    words = "many words that cannot fit on one line of a note"
    note |= {"text": words, "size": 16, "color": "#000000", "fill": "#ffeb3b"}
    image = image_of(thumbnails.render([note]))
    # The note fills the image at scale 1 (200 x 120 fits in 304 x 184).
    dx, dy = (W - 200) / 2, (H - 120) / 2
    r, g, b = image.getpixel((round(dx + 195), round(dy + 115)))
    assert r > 240 and g > 220 and b < 80, "the note's yellow"
    inside = image.crop((round(dx), round(dy), round(dx + 200), round(dy + 120)))
    rows = [
        y for y in range(120) if any(dark(inside.getpixel((x, y))) for x in range(200))
    ]
    assert rows and rows[-1] - rows[0] > 30, "the text wraps onto several lines"
    assert not any(dark(image.getpixel((round(dx) - 3, y))) for y in range(H)), (
        "no text outside the box"
    )
    assert thumbnails.wrap(words, 16, 180)[0] != words
    assert all(
        thumbnails.text_width(line, 16) <= 180
        for line in thumbnails.wrap(words, 16, 180)
    )
    assert thumbnails.wrap("a\n\nb", 16, 180) == ["a", "", "b"]


def two_tone(size=(40, 20)):
    """Red on the left half, blue on the right: shows a flip."""
    picture = Image.new("RGBA", size, (255, 0, 0, 255))
    picture.paste((0, 0, 255, 255), (size[0] // 2, 0, size[0], size[1]))
    return picture


def test_an_image_is_its_upload_in_its_box_flipped_by_a_negative_width():
    image = {"id": "i1", "kind": "image", "x": 0, "y": 0, "asset": "k" * 16}
    image |= {"w": 200, "h": 100, "opacity": 1}
    uploads = {"k" * 16: two_tone()}
    plain = image_of(thumbnails.render([image], images=uploads))
    dx, dy = (W - 200) / 2, (H - 100) / 2
    assert is_red(plain.getpixel((round(dx + 20), round(dy + 50))))
    assert plain.getpixel((round(dx + 180), round(dy + 50)))[2] > 200
    # x is then the right edge: the same box, mirrored.
    flipped = image_of(
        thumbnails.render([{**image, "x": 200, "w": -200}], images=uploads)
    )
    assert flipped.getpixel((round(dx + 20), round(dy + 50)))[2] > 200
    assert is_red(flipped.getpixel((round(dx + 180), round(dy + 50))))
    missing = image_of(thumbnails.render([image]))
    assert missing.getpixel((W // 2, H // 2)) == thumbnails.IMAGE_PENDING
    faint = image_of(thumbnails.render([{**image, "opacity": 0.5}], images=uploads))
    r, g, b = faint.getpixel((round(dx + 20), round(dy + 50)))
    assert r > 240 and 100 < g < 160, "half red over white"


@pytest.mark.django_db
def test_refresh_reads_the_boards_uploads_from_the_storage(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    board = services.board_create(slug="pictures", title="Pictures")
    client = Client()
    png = io.BytesIO()
    two_tone((80, 40)).save(png, "PNG")
    png.seek(0)
    png.name = "two.png"
    answer = client.post("/b/pictures/assets/", {"file": png})
    assert answer.status_code == 201, answer.content
    key = answer.json()["asset"]
    picture = {"id": "i1", "kind": "image", "x": 0, "y": 0, "asset": key}
    add(board, {**picture, "w": 200, "h": 100})
    thumbnails.refresh(board.pk)
    image = image_of(bytes(Thumbnail.objects.get(board=board).png))
    dx, dy = (W - 200) / 2, (H - 100) / 2
    assert is_red(image.getpixel((round(dx + 20), round(dy + 50))))
    assert image.getpixel((round(dx + 180), round(dy + 50)))[2] > 200


def test_any_coordinates_fit_in_the_image():
    far = [
        red_rect("a", x=-1_000_000, y=-1_000_000, w=-1_000, h=-1_000),
        el("rect", id="b", x=1_000_000, y=1_000_000, w=5, h=5, fill="#000000"),
        el("stroke", id="c", x=999_000, y=-999_000, points=[[0, 0], [-1e6, 1e6]]),
    ]
    image = image_of(thumbnails.render(far))
    assert image.size == (W, H)
    top_left = [image.getpixel((x, y)) for x in range(W // 2) for y in range(H // 2)]
    assert any(is_red(pixel) for pixel in top_left), "the far corner's rect"
    bottom_right = [
        image.getpixel((x, y)) for x in range(W // 2, W) for y in range(H // 2, H)
    ]
    assert any(dark(pixel) for pixel in bottom_right)


def test_malformed_elements_are_skipped_and_the_rest_drawn():
    broken = [{"kind": "rect"}, el("stroke", points=[]), {"id": 1}, "junk"]
    image = image_of(thumbnails.render([*broken, red_rect(w=200, h=100)]))
    assert is_red(image.getpixel((W // 2, H // 2)))


def test_only_the_topmost_elements_are_drawn_and_long_strokes_are_thinned():
    bottom = red_rect("bottom", x=0, y=0, w=1000, h=1000)
    dots = [
        el("stroke", id=f"d{n}", x=n % 100 * 10, y=n // 100 * 10, points=[[0, 0]])
        for n in range(thumbnails.MAX_ELEMENTS)
    ]
    image = image_of(thumbnails.render([bottom, *dots]))
    assert not any(is_red(pixel) for pixel in pixels(image))
    long = el("stroke", points=[[n, (n % 50) * 4] for n in range(20_000)], width=3)
    started = time.perf_counter()
    image = image_of(thumbnails.render([long]))
    assert time.perf_counter() - started < 2
    columns = {x for x in range(W) for y in range(H) if dark(image.getpixel((x, y)))}
    assert min(columns) < 2 * thumbnails.MARGIN
    assert max(columns) > W - 2 * thumbnails.MARGIN


# -- the cache -------------------------------------------------------------------------


def add(board, *elements):
    """Commit elements through the engine, as a client would have."""
    limits = services.current_limits()
    requests = []
    for element in elements:
        checked = p.validate_element(element, limits)
        cid = f"cid-{element['id']}"
        requests.append(OpRequest(cid, "add", SEEDER, p.AddOp(cid, checked)))
    services.ops_commit(board_id=board.pk, requests=requests, limits=limits)
    board.refresh_from_db()


def wire_rect(eid, **fields):
    element = {"id": eid, "kind": "rect", "x": 0, "y": 0, "w": 200, "h": 100}
    return {**element, "color": "#ff0000", "width": 2, "fill": "#ff0000", **fields}


def later():
    return timezone.now() + thumbnails.QUIET + timedelta(seconds=1)


@pytest.mark.django_db
def test_a_changed_board_is_stale_after_the_quiet_period_and_not_before():
    board = services.board_create(slug="drawn", title="Drawn")
    assert thumbnails.stale_boards(10, now=later()) == [], "never changed: placeholder"
    add(board, wire_rect("r1"))
    assert thumbnails.stale_boards(10, now=timezone.now()) == [], "still being drawn"
    assert thumbnails.refresh_stale(10, now=timezone.now()) == 0
    assert thumbnails.stale_boards(10, now=later()) == [board.pk]

    assert thumbnails.refresh_stale(10, now=later()) == 1
    stored = Thumbnail.objects.get(board=board)
    assert stored.seq == board.seq == 1
    image = image_of(bytes(stored.png))
    assert is_red(image.getpixel((W // 2, H // 2)))
    assert thumbnails.stale_boards(10, now=later()) == []

    add(board, wire_rect("r2", x=500, fill=None, color="#000000"))
    assert thumbnails.stale_boards(10, now=later()) == [board.pk]
    assert thumbnails.refresh(board.pk) == 2
    assert Thumbnail.objects.get(board=board).seq == 2


@pytest.mark.django_db
def test_stale_boards_come_oldest_change_first_up_to_the_limit():
    boards = [services.board_create(slug=f"b{n}", title="B") for n in range(3)]
    for n, board in enumerate(boards):
        add(board, wire_rect(f"r{n}"))
    now = timezone.now()
    for age, board in zip([5, 60, 30], boards, strict=True):
        Board.objects.filter(pk=board.pk).update(
            changed_at=now - timedelta(seconds=age)
        )
    assert thumbnails.stale_boards(10, now=now) == [
        boards[1].pk,
        boards[2].pk,
        boards[0].pk,
    ]
    assert thumbnails.stale_boards(2, now=now) == [boards[1].pk, boards[2].pk]


@pytest.mark.django_db
def test_refresh_draws_live_elements_only_and_forgets_deleted_boards():
    board = services.board_create(slug="gone", title="Gone")
    add(board, wire_rect("r1"), wire_rect("r2", x=1000, color="#000000", fill=None))
    delete = p.DeleteOp("cid-del", ("r2",))
    services.ops_commit(
        board_id=board.pk,
        requests=[OpRequest("cid-del", "delete", SEEDER, delete)],
        limits=services.current_limits(),
    )
    assert thumbnails.refresh(board.pk) == 3
    image = image_of(bytes(Thumbnail.objects.get(board=board).png))
    assert is_red(image.getpixel((W // 2, H // 2))), "the deleted rect is not fitted in"
    pk = board.pk
    services.board_delete(board=board)
    assert thumbnails.refresh(pk) is None
    assert not Thumbnail.objects.filter(board_id=pk).exists()


@pytest.mark.django_db
def test_the_command_refreshes_stale_boards_now_or_every_board_or_one():
    a = services.board_create(slug="cmd-a", title="A")
    b = services.board_create(slug="cmd-b", title="B")
    add(a, wire_rect("r1"))
    out = io.StringIO()
    call_command("thumbnails", stdout=out)  # no quiet period for an operator
    assert "Rendered 1 thumbnail(s)." in out.getvalue()
    assert Thumbnail.objects.get(board=a).seq == 1
    call_command("thumbnails", "--all", stdout=io.StringIO())
    assert Thumbnail.objects.filter(board__in=[a, b]).count() == 2
    add(b, wire_rect("r2"))
    call_command("thumbnails", "--board", "cmd-b", stdout=io.StringIO())
    assert Thumbnail.objects.get(board=b).seq == 1


# -- serving ---------------------------------------------------------------------------


@pytest.fixture
def owner(db):
    return get_user_model().objects.create_user("olga", password="pw-olga-123")


@pytest.fixture
def stranger(db):
    return get_user_model().objects.create_user("sam", password="pw-sam-123")


def logged_in(user):
    client = Client()
    client.force_login(user)
    return client


def assert_png(answer):
    assert answer.status_code == 200
    assert answer["Content-Type"] == "image/png"
    assert answer["X-Content-Type-Options"] == "nosniff"
    assert answer["Cache-Control"] == "private, max-age=60"
    return image_of(answer.content)


@pytest.mark.django_db
def test_a_public_boards_thumbnail_is_the_placeholder_until_rendered(client):
    board = services.board_create(slug="open", title="Open")
    answer = client.get("/b/open/thumbnail.png")
    assert_png(answer)
    assert answer["ETag"] == '"placeholder"'
    assert answer.content == thumbnails.placeholder()

    add(board, wire_rect("r1"))
    assert client.get("/b/open/thumbnail.png")["ETag"] == '"placeholder"', (
        "nothing is rendered on the request path"
    )
    thumbnails.refresh(board.pk)
    answer = client.get("/b/open/thumbnail.png")
    image = assert_png(answer)
    assert is_red(image.getpixel((W // 2, H // 2)))
    etag = answer["ETag"]
    assert etag.startswith('"1-'), "the ETag names the seq shown"
    again = client.get("/b/open/thumbnail.png", HTTP_IF_NONE_MATCH=etag)
    assert again.status_code == 304
    assert client.head("/b/open/thumbnail.png").status_code == 200
    assert client.post("/b/open/thumbnail.png").status_code == 405
    assert client.get("/b/nowhere/thumbnail.png").status_code == 404


@pytest.mark.django_db
def test_a_private_boards_thumbnail_follows_the_board_pages_access(
    client, owner, stranger
):
    board = services.board_create(
        slug="secret", title="Secret", owner=owner, is_public=False
    )
    add(board, wire_rect("r1"))
    thumbnails.refresh(board.pk)
    # The board page: a login for the anonymous, a refusal for a stranger.
    assert client.get("/b/secret/").status_code == 302
    assert logged_in(stranger).get("/b/secret/").status_code == 403
    # Its thumbnail: refused to both, without a login redirect for an image.
    assert client.get("/b/secret/thumbnail.png").status_code == 403
    refused = logged_in(stranger).get("/b/secret/thumbnail.png")
    assert refused.status_code == 403
    assert b"PNG" not in refused.content
    assert_png(logged_in(owner).get("/b/secret/thumbnail.png"))
    services.member_set(board=board, user=stranger, role=Role.VIEWER)
    assert_png(logged_in(stranger).get("/b/secret/thumbnail.png"))


@pytest.mark.django_db
def test_a_share_key_counts_from_the_session_never_from_the_thumbnails_url(
    client, owner
):
    board = services.board_create(
        slug="linked", title="Linked", owner=owner, is_public=False
    )
    _, key = services.share_link_create(board=board, role=Role.VIEWER)
    assert client.get(f"/b/linked/thumbnail.png?key={key}").status_code == 403
    client.get(f"/b/linked/?key={key}")  # the board page takes it into the session
    assert_png(client.get("/b/linked/thumbnail.png"))


@pytest.mark.django_db
def test_the_home_pages_lists_show_each_boards_thumbnail(owner):
    services.board_create(slug="public-one", title="Public one")
    services.board_create(slug="mine", title="Mine", owner=owner, is_public=False)
    text = logged_in(owner).get("/").content.decode()
    for slug in ("public-one", "mine"):
        assert (
            f'<img class="thumb" src="/b/{slug}/thumbnail.png" alt="" '
            'width="96" height="60" loading="lazy">'
        ) in text


@pytest.mark.django_db
def test_the_admins_board_list_shows_thumbnails_private_boards_included(
    owner, django_user_model
):
    board = services.board_create(
        slug="secret", title="Secret", owner=owner, is_public=False
    )
    staff = django_user_model.objects.create_superuser("root", "r@example.com", "x")
    admin = logged_in(staff)
    page = admin.get("/admin/whiteboard/board/").content.decode()
    url = f"/admin/whiteboard/board/{board.pk}/thumbnail.png"
    assert f'<img src="{url}" alt="" width="64" height="40" loading="lazy">' in page
    assert_png(admin.get(url))
    assert admin.get("/b/secret/thumbnail.png").status_code == 403, (
        "staff are not members: the site's own URL refuses them"
    )
    assert admin.get("/admin/whiteboard/board/999999/thumbnail.png").status_code == 404
    assert logged_in(owner).get(url).status_code == 302, "the admin asks for staff"


# -- live: the server refreshes thumbnails in the background ---------------------------


def get_thumbnail(server, slug):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        conn.request("GET", f"/b/{slug}/thumbnail.png")
        answer = conn.getresponse()
        return answer.status, answer.getheader("ETag"), answer.read()
    finally:
        conn.close()


@pytest.mark.live
@pytest.mark.standalone
async def test_a_live_server_renders_a_changed_board_in_the_background(
    start_server, tmp_path
):
    # A database of its own: the job takes the oldest stale boards first, and
    # the shared one holds every other live test's boards.
    database = await to_thread(Database, tmp_path)
    server = await to_thread(
        start_server, database=database, WHITEBOARD_THUMBNAIL_SECONDS="1"
    )
    slug = await to_thread(database.create_board)
    status, etag, _ = await to_thread(get_thumbnail, server, slug)
    assert (status, etag) == (200, '"placeholder"')
    async with server.open(slug) as ws:
        await read_state(ws)
        await ws.send(
            json.dumps(
                {"type": "add", "cid": "cid-live-rect", "element": wire_rect("r1")}
            )
        )
        async with asyncio.timeout(10):
            while True:
                frame = json.loads(await ws.recv())
                if frame["type"] == "ops":
                    break
        deadline = time.monotonic() + 15
        while True:
            status, etag, png = await to_thread(get_thumbnail, server, slug)
            assert status == 200
            if etag != '"placeholder"':
                break
            assert time.monotonic() < deadline, "no thumbnail within 15 s"
            await asyncio.sleep(0.2)
    assert etag.startswith('"1-')
    image = image_of(png)
    assert is_red(image.getpixel((W // 2, H // 2)))
    assert "Upkeep (thumbnails) failed" not in server.logs()
