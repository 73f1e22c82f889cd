"""Export and import (whiteboard/portability.py): the round trip, hostile files,
the endpoints and the management commands, and the epoch of a replaced board."""

import datetime
import io
import json

import pytest
from django.core.management import CommandError, call_command

from tests.test_services import ANN, BOB, add, commit, delete, rect, simple, update
from tests.test_timeline import snapshot
from whiteboard import portability, services, timeline
from whiteboard import protocol as p
from whiteboard.models import Asset, Board, Element, Op

pytestmark = pytest.mark.django_db

LIMITS = p.Limits(max_elements=20)


@pytest.fixture
def drawn(owner):
    """A board with a history: adds, an update, a delete, a clear, an undo."""
    board = services.board_create(slug="drawn", title="Drawn <b>", owner=owner)
    commit(board, add(rect("a")), add(rect("b", fill="#ff0000")), limits=LIMITS)
    commit(board, update("a", BOB, x=70), delete("b", author=BOB), limits=LIMITS)
    commit(board, simple("clear", ANN), simple("undo", ANN), limits=LIMITS)
    commit(board, add(rect("c", opacity=0.5), author=BOB), limits=LIMITS)
    board.refresh_from_db()
    return board


def without_v(elements):
    return [{k: v for k, v in e.items() if k != "v"} for e in elements]


def round_trip(board, owner, **options):
    data = portability.export_bytes(board, **options)
    checked = portability.read(data, services.current_limits())
    return portability.import_board(checked, owner=owner)


def test_a_round_trip_gives_a_board_with_the_same_snapshot(drawn, owner):
    copy = round_trip(drawn, owner)
    assert copy.slug != drawn.slug and copy.title == "Drawn <b>"
    assert without_v(snapshot(copy)) == without_v(snapshot(drawn))
    # Its log is one op whose replay is that snapshot, so its history works.
    assert list(Op.objects.filter(board=copy).values_list("kind", flat=True)) == [
        "import"
    ]
    assert timeline.state_at(copy, copy.seq).live() == snapshot(copy)
    assert copy.live_elements == drawn.live_elements
    assert copy.live_bytes == drawn.live_bytes


def test_a_round_trip_with_history_keeps_every_seq(drawn, owner):
    Op.objects.filter(board=drawn, seq=1).update(
        created_at=datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)
    )
    copy = round_trip(drawn, owner, history=True)
    assert snapshot(copy) == snapshot(drawn)  # the same v's: the same seqs
    assert copy.seq == drawn.seq

    def times(board):
        return list(
            Op.objects.filter(board=board).order_by("seq").values_list("created_at")
        )

    assert times(copy) == times(drawn)
    for seq in range(drawn.seq + 1):
        assert (
            timeline.state_at(copy, seq).live() == timeline.state_at(drawn, seq).live()
        )
    # The ids of deleted elements stay taken, as on the original.
    erased = set(
        Element.objects.filter(board=drawn, deleted=True).values_list(
            "element_id", flat=True
        )
    )
    assert erased == {"b"}
    result = commit(copy, add(rect("b")), limits=LIMITS)
    assert result.outcomes[0].error.code == "exists"


def document(**changes):
    base = {
        "format": "whiteboard-board",
        "version": 1,
        "board": {"title": "T"},
        "elements": [{**rect("a"), "by": "Ann", "v": 1}],
    }
    return {**base, **changes}


HOSTILE = [
    (b"not json", "not JSON"),
    (b"[]", "one JSON object"),
    (document(format="other"), "not a board file"),
    (document(version=2), "version 2"),
    (document(extra=1), "Unknown fields"),
    (document(board="T"), '"board"'),
    (document(elements={}), '"elements" must be a list'),
    (document(elements=[{"id": "a", "kind": "blob", "x": 0, "y": 0}]), "Element 1"),
    (document(elements=[{**rect("a"), "onload": "alert(1)"}]), "Element 1"),
    (document(elements=[{**rect("a"), "x": 1e12}]), "Element 1"),
    (document(elements=[rect("a"), rect("a")]), "appear twice"),
    (document(elements=[rect(f"e{n}") for n in range(21)]), "21 elements"),
    (document(elements=[{**rect("a"), "by": "x" * 151}]), '"by"'),
    (document(history="no"), '"history" must be a list'),
    (
        document(history=[{"cid": "c" * 8, "entries": [{"op": "add", "seq": 2}]}]),
        "seq 1 was expected",
    ),
    (
        document(
            history=[
                {
                    "cid": "c" * 8,
                    "entries": [
                        {"op": "add", "seq": 1, "element": {**rect("z"), "v": 1}}
                    ],
                }
            ]
        ),
        "does not lead to the elements",
    ),
    (
        document(
            history=[
                {
                    "cid": "c" * 8,
                    "entries": [
                        {"op": "add", "seq": 1, "element": {**rect("a"), "v": 1}},
                        {"op": "update", "seq": 2, "id": "a", "set": {"text": "x"}},
                    ],
                }
            ]
        ),
        "History op 1",
    ),
]


@pytest.mark.parametrize(("content", "says"), HOSTILE)
def test_a_hostile_file_is_refused_saying_why_and_nothing_is_stored(
    client, owner, content, says, settings
):
    settings.WHITEBOARD_LIMITS = {**settings.WHITEBOARD_LIMITS, "max_elements": 20}
    data = content if isinstance(content, bytes) else json.dumps(content).encode()
    before = (Board.objects.count(), Op.objects.count(), Element.objects.count())
    with pytest.raises(portability.ImportRefused) as refused:
        portability.read(data, LIMITS)
    assert says in refused.value.message
    client.force_login(owner)
    upload = io.BytesIO(data)
    upload.name = "board.json"
    answer = client.post(
        "/boards/import", {"file": upload}, HTTP_ACCEPT="application/json"
    )
    assert answer.status_code == 400
    assert answer.json()["error"] == "bad_file"
    assert (Board.objects.count(), Op.objects.count(), Element.objects.count()) == (
        before
    )


def test_export_is_for_viewers_too_and_import_for_logged_in_users(client, drawn, owner):
    answer = client.get("/b/drawn/export.json")
    assert answer.status_code == 200
    assert answer["Content-Disposition"] == 'attachment; filename="drawn.json"'
    data = answer.content
    assert json.loads(data)["format"] == "whiteboard-board"
    assert "history" in json.loads(client.get("/b/drawn/export.json?history=1").content)
    drawn.is_public = False
    drawn.save()
    assert client.get("/b/drawn/export.json").status_code == 401
    upload = io.BytesIO(data)
    upload.name = "drawn.json"
    assert client.post("/boards/import", {"file": upload}).status_code == 302  # login
    client.force_login(owner)
    upload.seek(0)
    answer = client.post("/boards/import", {"file": upload})
    made = Board.objects.exclude(pk=drawn.pk).get()
    assert answer.status_code == 302 and answer["Location"] == f"/b/{made.slug}/"
    assert made.owner == owner and not made.is_public


def test_the_management_commands_round_trip_and_replace_with_a_new_epoch(
    drawn, owner, tmp_path
):
    path = tmp_path / "drawn.json"
    call_command("exportboard", "drawn", "--output", str(path), "--history")
    out = io.StringIO()
    call_command(
        "importboard", str(path), "--slug", "copy", "--owner", "olga", stdout=out
    )
    assert "Imported board 'copy'" in out.getvalue()
    copy = Board.objects.get(slug="copy")
    assert snapshot(copy) == snapshot(drawn)
    with pytest.raises(CommandError, match="exists already"):
        call_command("importboard", str(path), "--slug", "copy")
    # Over an existing board: its content and history are the file's, and
    # its epoch changes, so that clients resume into a snapshot.
    other = tmp_path / "other.json"
    other.write_text(json.dumps(document()))
    epoch = copy.epoch
    call_command("importboard", str(other), "--slug", "copy", "--replace")
    copy.refresh_from_db()
    assert copy.epoch != epoch
    assert [e["id"] for e in snapshot(copy)] == ["a"] and copy.seq == 1
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    with pytest.raises(CommandError, match="Nothing was imported"):
        call_command("importboard", str(bad), "--slug", "copy", "--replace")
    copy.refresh_from_db()
    assert copy.seq == 1


def test_newepoch_changes_the_epoch_of_the_boards_named(drawn):
    other = services.board_create(slug="other", title="Other")
    epochs = {b.slug: b.epoch for b in Board.objects.all()}
    call_command("newepoch", "--board", "drawn", stdout=io.StringIO())
    drawn.refresh_from_db()
    other.refresh_from_db()
    assert drawn.epoch != epochs["drawn"] and other.epoch == epochs["other"]
    call_command("newepoch", "--all", stdout=io.StringIO())
    other.refresh_from_db()
    assert other.epoch != epochs["other"]
    with pytest.raises(CommandError):
        call_command("newepoch", "--board", "nope")


def test_the_home_page_offers_import_to_logged_in_users_only(client, owner):
    assert b'id="import-file"' not in client.get("/").content
    client.force_login(owner)
    page = client.get("/").content.decode()
    assert 'action="/boards/import"' in page and 'enctype="multipart/form-data"' in page


def test_a_refused_import_from_the_home_page_says_why(client, owner):
    client.force_login(owner)
    upload = io.BytesIO(b'{"format": "other"}')
    upload.name = "x.json"
    answer = client.post("/boards/import", {"file": upload})
    assert answer.status_code == 400
    assert "This is not a board file" in answer.content.decode()
    assert Board.objects.count() == 0


def test_the_board_page_links_its_export(client, drawn):
    page = client.get("/b/drawn/").content.decode()
    assert 'id="board-export" href="/b/drawn/export.json" download' in page


# -- images travel with their board --------------------------------------------------


def png_bytes(color=(255, 0, 0), size=(30, 20)):
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, "PNG")
    return out.getvalue()


@pytest.fixture
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


def files_in(root):
    return sorted(f for f in root.rglob("*") if f.is_file()) if root.exists() else []


@pytest.fixture
def pictured(owner, media, client):
    """A board with two images: one live, one deleted (undo can bring it back)."""
    board = services.board_create(slug="pics", title="Pictures", owner=owner)
    client.force_login(owner)
    keys = []
    for color in ((255, 0, 0), (0, 0, 255)):
        upload = io.BytesIO(png_bytes(color))
        upload.name = "p.png"
        answer = client.post("/b/pics/assets/", {"file": upload})
        assert answer.status_code == 201
        keys.append(answer.json()["asset"])
    for n, key in enumerate(keys):
        picture = {"id": f"i{n}", "kind": "image", "x": n * 50, "y": 0, "asset": key}
        result = commit(board, add({**picture, "w": 30, "h": 20}))
        assert result.outcomes[0].error is None
    commit(board, delete("i1"))
    board.refresh_from_db()
    return board, keys


def stored_picture(board, element_id):
    body = json.loads(Element.objects.get(board=board, element_id=element_id).body)
    asset = Asset.objects.get(board=board, key=body["asset"])
    with asset.file.open("rb") as f:
        from PIL import Image

        return asset, Image.open(io.BytesIO(f.read())).convert("RGB").getpixel((5, 5))


def test_an_export_carries_the_images_and_an_import_stores_them_anew(pictured, owner):
    board, keys = pictured
    document = portability.export_board(board)
    assert set(document["assets"]) == {keys[0]}, "without history: the live image"
    assert document["assets"][keys[0]]["type"] == "image/png"

    copy = round_trip(board, owner)

    asset, pixel = stored_picture(copy, "i0")
    assert pixel == (255, 0, 0)
    assert asset.key != keys[0], "ids are unique on the server: a new one"
    copy.refresh_from_db()
    assert copy.asset_bytes == asset.bytes > 0
    assert Asset.objects.filter(board=board).count() == 2, "the original keeps its own"


def test_an_export_with_history_carries_deleted_images_too(pictured, owner):
    board, keys = pictured
    assert set(portability.export_board(board, history=True)["assets"]) == set(keys)
    copy = round_trip(board, owner, history=True)
    # The deleted image's row (a restore can bring it back) and the state
    # before its delete name the new copy of its upload.
    _, pixel = stored_picture(copy, "i1")
    assert pixel == (0, 0, 255)
    before_delete = timeline.state_at(copy, copy.seq - 1).live()
    key = next(e["asset"] for e in before_delete if e["id"] == "i1")
    assert Asset.objects.filter(board=copy, key=key).exists()
    assert key not in keys


def image_document(assets, key="k" * 20):
    element = {"id": "i", "kind": "image", "x": 0, "y": 0, "asset": key}
    return document(elements=[{**element, "w": 10, "h": 10}], assets=assets)


def encoded(data):
    import base64

    return base64.b64encode(data).decode()


HOSTILE_IMAGES = [
    (image_document({}), "its file is not in"),
    (image_document("no"), '"assets" must be an object'),
    (
        image_document(
            {"k" * 20: {"data": encoded(png_bytes())}, "x" * 20: {"data": ""}}
        ),
        "nothing names it",
    ),
    (image_document({"k" * 20: {"data": 5}}), "must be a base64 string"),
    (image_document({"k" * 20: {"data": "@@@@"}}), "is not base64"),
    (
        image_document({"k" * 20: {"data": encoded(b"<svg onload='x'></svg>")}}),
        "Only PNG, JPEG, GIF and WebP",
    ),
    (
        image_document({"k" * 20: {"data": encoded(png_bytes()[:60])}}),
        "damaged or incomplete",
    ),
    (
        image_document({"k" * 20: {"data": encoded(png_bytes(size=(300, 300)))}}),
        "at most 50000 are taken",
    ),
]


@pytest.mark.parametrize(("content", "says"), HOSTILE_IMAGES)
def test_a_file_with_a_bad_image_is_refused_and_nothing_is_stored(media, content, says):
    limits = p.Limits(max_asset_pixels=50_000)
    with pytest.raises(portability.ImportRefused) as refused:
        portability.read(json.dumps(content).encode(), limits)
    assert says in refused.value.message
    assert files_in(media) == [] and not Asset.objects.exists()


def test_a_failed_import_removes_the_files_it_stored(
    pictured, owner, media, monkeypatch
):
    board, _ = pictured
    data = portability.export_bytes(board)
    checked = portability.read(data, services.current_limits())
    before = files_in(media)

    def broken(*args, **kwargs):
        raise RuntimeError("the database went away")

    monkeypatch.setattr(portability, "write_as_one_op", broken)
    with pytest.raises(RuntimeError):
        portability.import_board(checked, owner=owner)
    assert files_in(media) == before
    assert Asset.objects.count() == 2


def test_a_replacing_import_drops_the_boards_old_uploads(
    pictured, owner, media, django_capture_on_commit_callbacks
):
    board, keys = pictured
    checked = portability.read(
        json.dumps(document()).encode(), services.current_limits()
    )
    with django_capture_on_commit_callbacks(execute=True):
        portability.import_board(checked, slug="pics", replace=True)
    board.refresh_from_db()
    assert not Asset.objects.filter(board=board).exists()
    assert board.asset_bytes == 0
    assert files_in(media) == []
