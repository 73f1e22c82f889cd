"""Images on boards (PROTOCOL.md 1.1, "Images"): upload, download, cleanassets."""

import io
import json
from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.test import Client
from django.utils import timezone
from django.utils.crypto import get_random_string
from PIL import Image, ImageSequence, PngImagePlugin

from whiteboard import protocol as p
from whiteboard import services
from whiteboard.models import Asset, Board, Element, Membership, Op

from .test_services import (
    add,
    codes,
    commit,
    elements,
    everything,
    rect,
    simple,
    update,
)

pytestmark = pytest.mark.django_db

KEY_CHARS = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")


# -- fixtures and helpers -------------------------------------------------------------


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    """A MEDIA_ROOT of the test's own, where the default storage writes."""
    root = tmp_path / "media"
    settings.MEDIA_ROOT = root
    return root


def stored_files(root):
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


@pytest.fixture
def private(owner):
    return services.board_create(
        slug="secret", title="Secret", owner=owner, is_public=False
    )


@pytest.fixture
def editor(make_user, private):
    user = make_user("edda")
    Membership.objects.create(board=private, user=user, role="editor")
    return user


@pytest.fixture
def viewer(make_user, private):
    user = make_user("vera")
    Membership.objects.create(board=private, user=user, role="viewer")
    return user


def as_user(user):
    client = Client()
    client.force_login(user)
    return client


def limits(settings, **changes):
    settings.WHITEBOARD_LIMITS = {**settings.WHITEBOARD_LIMITS, **changes}


def encoded(image, fmt, **params):
    out = io.BytesIO()
    image.save(out, fmt, **params)
    return out.getvalue()


def picture(size=(64, 48), mode="RGB"):
    """A small image that is not one flat colour."""
    image = Image.linear_gradient("L").resize(size).convert(mode)
    image.paste((200, 30, 30) if mode == "RGB" else 200, (4, 4, 20, 20))
    return image


def frames(count=3, size=(40, 30)):
    made = []
    for index in range(count):
        frame = Image.new("RGBA", size, (0, 0, 0, 0))
        frame.paste((255, 0, 0, 255), (index * 8, 0, index * 8 + 10, 10))
        made.append(frame)
    return made


def post(client, data, *, name="picture.png", content_type="image/png", slug="secret"):
    upload = SimpleUploadedFile(name, data, content_type=content_type)
    return client.post(f"/b/{slug}/assets/", {"file": upload})


def nothing_stored(media, board):
    board.refresh_from_db()
    assert stored_files(media) == []
    assert not Asset.objects.exists()
    assert board.asset_bytes == 0


# -- accepted images ------------------------------------------------------------------

ACCEPTED = [
    ("PNG", "image/png", lambda: encoded(picture(), "PNG"), (64, 48)),
    ("JPEG", "image/jpeg", lambda: encoded(picture(), "JPEG"), (64, 48)),
    (
        "GIF",
        "image/gif",
        lambda: encoded(
            frames()[0],
            "GIF",
            save_all=True,
            append_images=frames()[1:],
            duration=[100, 200, 300],
            loop=0,
        ),
        (40, 30),
    ),
    ("WEBP", "image/webp", lambda: encoded(picture(), "WEBP"), (64, 48)),
]


@pytest.mark.parametrize(("fmt", "content_type", "make", "size"), ACCEPTED)
def test_an_image_is_accepted_stored_once_and_served_to_viewers(
    fmt, content_type, make, size, media, private, editor, viewer
):
    # The declared name and type say nothing: the content decides.
    answer = post(as_user(editor), make(), name="x.txt", content_type="text/plain")

    assert answer.status_code == 201, answer.content
    body = answer.json()
    assert set(body) == {"asset", "type", "w", "h", "bytes"}
    assert body["type"] == content_type
    assert (body["w"], body["h"]) == size
    key = body["asset"]
    assert 16 <= len(key) <= 64 and set(key) <= KEY_CHARS
    [path] = stored_files(media)
    assert path.stat().st_size == body["bytes"]
    assert key in path.name and "x.txt" not in str(path)
    asset = Asset.objects.get()
    assert (asset.key, asset.board, asset.uploaded_by) == (key, private, editor)
    private.refresh_from_db()
    assert private.asset_bytes == body["bytes"]

    served = as_user(viewer).get(f"/b/secret/assets/{key}")
    assert served.status_code == 200
    assert served["Content-Type"] == content_type
    assert served["X-Content-Type-Options"] == "nosniff"
    assert served["Content-Security-Policy"] == "sandbox"
    assert served["Cache-Control"] == "private, max-age=31536000, immutable"
    data = b"".join(served.streaming_content)
    assert data == path.read_bytes()
    assert Image.open(io.BytesIO(data)).format == fmt

    again = as_user(viewer).get(
        f"/b/secret/assets/{key}", HTTP_IF_NONE_MATCH=served["ETag"]
    )
    assert again.status_code == 304


def test_a_jpeg_comes_back_without_its_exif_and_turned_as_it_said(editor, viewer):
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: turn 90° clockwise to show
    exif[0x010F] = "SpyCam"  # make
    exif[0x0131] = "secret-software"
    original = encoded(picture((60, 40)), "JPEG", exif=exif.tobytes())
    assert b"SpyCam" in original

    answer = post(as_user(editor), original, name="photo.jpg")

    assert answer.status_code == 201
    assert (answer.json()["w"], answer.json()["h"]) == (40, 60)
    data = b"".join(
        as_user(viewer)
        .get(f"/b/secret/assets/{answer.json()['asset']}")
        .streaming_content
    )
    assert b"SpyCam" not in data and b"secret-software" not in data
    image = Image.open(io.BytesIO(data))
    assert "exif" not in image.info
    assert dict(image.getexif()) == {}
    assert image.size == (40, 60)


def test_a_png_loses_its_text_and_anything_after_its_end(editor, media):
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "<script>alert(1)</script>")
    info.add_itxt("XML:com.adobe.xmp", "<x:xmpmeta>where I live</x:xmpmeta>")
    original = encoded(picture(), "PNG", pnginfo=info) + b"<script>alert(2)</script>"

    assert post(as_user(editor), original).status_code == 201

    [path] = stored_files(media)
    data = path.read_bytes()
    assert b"<script" not in data and b"where I live" not in data
    assert b"tEXt" not in data and b"iTXt" not in data
    image = Image.open(path)
    assert image.size == (64, 48)
    assert set(image.info) <= {"dpi", "gamma", "srgb", "icc_profile"}


def test_an_animated_gif_keeps_its_frames_and_their_durations(editor, media):
    made = frames(4)
    original = encoded(
        made[0],
        "GIF",
        save_all=True,
        append_images=made[1:],
        duration=[100, 200, 300, 400],
        loop=0,
        comment=b"private note",
    )

    assert post(as_user(editor), original).status_code == 201

    [path] = stored_files(media)
    assert b"private note" not in path.read_bytes()
    image = Image.open(path)
    assert image.n_frames == 4
    durations = [frame.info["duration"] for frame in ImageSequence.Iterator(image)]
    assert durations == [100, 200, 300, 400]
    shown = [f.convert("RGBA").tobytes() for f in ImageSequence.Iterator(image)]
    sent = Image.open(io.BytesIO(original))
    expected = [f.convert("RGBA").tobytes() for f in ImageSequence.Iterator(sent)]
    assert shown == expected


# -- refused uploads ------------------------------------------------------------------

SVG = (
    b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="10" '
    b'height="10"><script>alert(document.cookie)</script><rect width="10" '
    b'height="10"/></svg>'
)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
HTML = b"<!doctype html><html><body><script>alert(1)</script></body></html>"


def bomb():
    """20,000 x 20,000 pixels of one colour: 400 million pixels in a few kB."""
    return encoded(Image.new("1", (20000, 20000)), "PNG")


def truncated_png():
    data = encoded(Image.effect_noise((100, 100), 64), "PNG")
    return data[: len(data) // 2]


HOSTILE = [
    ("svg", SVG, "image/svg+xml", "evil.svg", 415, "unsupported_type"),
    ("html as png", HTML, "image/png", "innocent.png", 415, "unsupported_type"),
    ("bmp", encoded(picture(), "BMP"), "image/png", "a.png", 415, "unsupported_type"),
    ("bomb", bomb(), "image/png", "bomb.png", 413, "too_many_pixels"),
    ("truncated png", truncated_png(), "image/png", "cut.png", 400, "bad_image"),
    (
        "png signature only",
        PNG_SIGNATURE + b"\0" * 40,
        "image/png",
        "a",
        400,
        "bad_image",
    ),
    ("empty", b"", "image/png", "empty.png", 400, "empty_file"),
]


@pytest.mark.parametrize(
    ("data", "content_type", "name", "status", "code"),
    [case[1:] for case in HOSTILE],
    ids=[case[0] for case in HOSTILE],
)
def test_hostile_uploads_are_refused_and_stored_nowhere(
    data, content_type, name, status, code, media, private, editor
):
    answer = post(as_user(editor), data, name=name, content_type=content_type)

    assert answer.status_code == status, answer.content
    assert answer.json()["error"] == code
    assert answer.json()["message"]
    nothing_stored(media, private)


def test_a_file_over_max_asset_bytes_is_refused(settings, media, private, editor):
    limits(settings, max_asset_bytes=2000)
    noise = encoded(Image.effect_noise((64, 64), 64), "PNG")
    assert 2000 < len(noise) < 64 * 1024  # under the request-size check: read, cut

    answer = post(as_user(editor), noise)

    assert answer.status_code == 413
    assert answer.json()["error"] == "too_large"
    nothing_stored(media, private)


def test_a_request_far_over_max_asset_bytes_is_refused_unread(
    settings, media, private, editor
):
    limits(settings, max_asset_bytes=2000)
    answer = post(as_user(editor), PNG_SIGNATURE + b"\0" * 200_000)
    assert answer.status_code == 413
    assert answer.json()["error"] == "too_large"
    nothing_stored(media, private)


def test_an_image_of_more_pixels_than_the_limit_is_refused(
    settings, media, private, editor
):
    limits(settings, max_asset_pixels=1000)
    assert post(as_user(editor), encoded(picture((40, 25)), "PNG")).status_code == 201
    answer = post(as_user(editor), encoded(picture((40, 26)), "PNG"))
    assert answer.status_code == 413
    assert answer.json()["error"] == "too_many_pixels"
    assert Asset.objects.count() == 1 and len(stored_files(media)) == 1


def test_every_frame_of_an_animation_counts_against_the_pixel_limit(
    settings, media, private, editor
):
    limits(settings, max_asset_pixels=3 * 40 * 30)
    made = frames(4)
    gif = encoded(made[0], "GIF", save_all=True, append_images=made[1:])
    answer = post(as_user(editor), gif)
    assert answer.status_code == 413
    assert answer.json()["error"] == "too_many_pixels"
    nothing_stored(media, private)


def test_a_request_without_a_file_is_refused(private, editor):
    answer = as_user(editor).post("/b/secret/assets/", {"other": "x"})
    assert answer.status_code == 400
    assert answer.json()["error"] == "no_file"


# -- access ---------------------------------------------------------------------------


def test_who_may_upload_and_download(media, make_user, private, editor, viewer):
    png = encoded(picture(), "PNG")
    key = post(as_user(editor), png).json()["asset"]
    url = f"/b/secret/assets/{key}"

    anonymous = Client()
    assert post(anonymous, png).status_code == 401
    assert post(anonymous, png).json()["error"] == "login_required"
    assert anonymous.get(url).status_code == 401
    stranger = as_user(make_user("sam"))
    assert post(stranger, png).status_code == 403
    assert stranger.get(url).status_code == 403
    refused = post(as_user(viewer), png)
    assert refused.status_code == 403
    assert refused.json()["error"] == "forbidden"
    assert as_user(viewer).get(url).status_code == 200
    assert post(as_user(editor), png, slug="nowhere").status_code == 404
    assert as_user(editor).get("/b/secret/assets/").status_code == 405
    assert len(stored_files(media)) == 1 and Asset.objects.count() == 1


def test_a_locked_board_takes_no_image(media, private, owner):
    Board.objects.filter(pk=private.pk).update(locked=True)
    answer = post(as_user(owner), encoded(picture(), "PNG"))
    assert answer.status_code == 403
    nothing_stored(media, private)


def test_a_public_board_takes_images_from_its_visitors(board, media):
    answer = post(Client(), encoded(picture(), "PNG"), slug="team")
    assert answer.status_code == 201
    assert Asset.objects.get().uploaded_by is None


def test_an_id_of_another_board_or_a_guess_is_not_found(private, owner, editor):
    other = services.board_create(slug="other", title="Other", owner=owner)
    key = post(as_user(owner), encoded(picture(), "PNG"), slug="other").json()["asset"]
    client = as_user(owner)
    assert client.get(f"/b/other/assets/{key}").status_code == 200

    answer = client.get(f"/b/secret/assets/{key}")
    assert answer.status_code == 404
    assert answer.json()["error"] == "not_found"
    guess = get_random_string(32)
    assert client.get(f"/b/secret/assets/{guess}").status_code == 404
    assert client.get("/b/secret/assets/short").status_code == 404
    assert client.get(f"/b/secret/assets/{key}.png").status_code == 404
    assert other.pk != private.pk


def test_the_upload_needs_the_csrf_token_the_page_sends(media, private, editor):
    client = Client(enforce_csrf_checks=True)
    client.force_login(editor)
    png = encoded(picture(), "PNG")
    assert post(client, png).status_code == 403
    nothing_stored(media, private)

    token = get_random_string(32)
    client.cookies["csrftoken"] = token
    upload = SimpleUploadedFile("a.png", png, content_type="image/png")
    answer = client.post(
        "/b/secret/assets/", {"file": upload}, headers={"X-CSRFToken": token}
    )
    assert answer.status_code == 201


# -- the quota ------------------------------------------------------------------------


def test_an_upload_past_the_boards_storage_quota_is_refused(
    settings, media, private, editor
):
    png = encoded(picture(), "PNG")
    size = len(png)  # stored sizes are close to it; the first one tells
    first = post(as_user(editor), png).json()["bytes"]
    limits(settings, max_board_bytes=1000 + first + size // 2)
    Board.objects.filter(pk=private.pk).update(live_bytes=1000)

    answer = post(as_user(editor), png)

    assert answer.status_code == 413
    assert answer.json()["error"] == "board_full"
    assert "limit" in answer.json()["message"]
    assert Asset.objects.count() == 1 and len(stored_files(media)) == 1
    private.refresh_from_db()
    assert private.asset_bytes == first


# -- image elements -------------------------------------------------------------------


def image_element(eid, asset, **fields):
    element = {"id": eid, "kind": "image", "x": 5, "y": 6, "asset": asset}
    return {**element, "w": 64, "h": 48, **fields}


def test_an_image_element_shows_an_upload_of_its_own_board(media, private, editor):
    """An upload's id is the key to an `add`; an id the board does not hold,
    or one of another board, is not_found and nothing is stored."""
    mine = post(as_user(editor), encoded(picture(), "PNG")).json()
    other_board = services.board_create(slug="other", title="Other")
    theirs = post(Client(), encoded(picture(), "PNG"), slug="other").json()
    assert Asset.objects.get(key=theirs["asset"]).board == other_board

    before = everything(private)
    guess = "G" * 24
    for key in (guess, theirs["asset"]):
        result = commit(private, add(image_element("bad", key)))
        assert codes(result) == ["not_found"]
        assert result.outcomes[0].error.message == (
            f"There is no uploaded image {key!r} on this board; upload it first "
            "(POST /b/secret/assets/)."
        )
    assert everything(private) == before

    assert codes(commit(private, add(image_element("pic", mine["asset"])))) == ["ok"]
    assert elements(private)["pic"]["asset"] == mine["asset"]
    assert elements(private)["pic"]["opacity"] == 1


def test_an_image_is_moved_resized_and_flipped_but_keeps_its_asset(
    media, private, editor
):
    key = post(as_user(editor), encoded(picture(), "PNG")).json()["asset"]
    commit(private, add(image_element("pic", key)))
    assert codes(commit(private, update("pic", x=50, w=-128, h=96, opacity=0.5))) == [
        "ok"
    ]
    assert elements(private)["pic"] == {
        **image_element("pic", key, x=50, w=-128, h=96, opacity=0.5),
        "by": "Ann",
    }
    for field, value in (("asset", "H" * 20), ("color", "#000000"), ("width", 2)):
        result = commit(private, update("pic", **{field: value}))
        assert codes(result) == ["bad_message"]
    assert codes(commit(private, simple("undo"))) == ["ok"]
    assert elements(private)["pic"]["w"] == 64


def test_uploaded_images_count_against_the_quota_of_drawings(
    settings, media, private, editor
):
    """The quota is one: drawings and images together (PROTOCOL.md 1.1)."""
    stored = post(as_user(editor), encoded(picture(), "PNG")).json()["bytes"]
    limits(settings, max_board_bytes=stored + 150)
    quota = p.Limits(max_board_bytes=stored + 150)
    assert codes(commit(private, add(rect("r1")), limits=quota)) == ["ok"]
    before = everything(private)

    result = commit(private, add(rect("r2")), limits=quota)

    assert codes(result) == ["board_full"]
    assert "of drawings and images; the limit is" in result.outcomes[0].error.message
    assert everything(private) == before


# -- cleanassets ----------------------------------------------------------------------


def test_cleanassets_deletes_only_old_assets_that_nothing_names(
    media, private, editor, django_capture_on_commit_callbacks
):
    png = encoded(picture(), "PNG")
    unused, drawn, logged, fresh = (post(as_user(editor), png).json() for _ in range(4))
    Element.objects.create(
        board=private,
        element_id="e1",
        kind="image",
        z=1,
        v=1,
        body=json.dumps({"id": "e1", "kind": "image", "asset": drawn["asset"]}),
    )
    # Named only by the log: an image added, then deleted (undo brings it back).
    entry = {"seq": 2, "op": "add", "element": {"id": "e2", "asset": logged["asset"]}}
    Op.objects.create(
        board=private,
        seq=2,
        last_seq=2,
        cid="c2",
        kind="add",
        by="edda",
        actor="user:1",
        entries=json.dumps([entry]),
    )
    hour_ago = timezone.now() - timedelta(hours=1, minutes=1)
    old = [unused["asset"], drawn["asset"], logged["asset"]]
    Asset.objects.filter(key__in=old).update(created_at=hour_ago)

    out = io.StringIO()
    call_command("cleanassets", "--dry-run", stdout=out)
    assert f"Would delete {unused['asset']}" in out.getvalue()
    assert Asset.objects.count() == 4 and len(stored_files(media)) == 4

    out = io.StringIO()
    with django_capture_on_commit_callbacks(execute=True):
        call_command("cleanassets", stdout=out)

    assert "Deleted 1 unused images" in out.getvalue()
    kept = set(Asset.objects.values_list("key", flat=True))
    assert kept == {drawn["asset"], logged["asset"], fresh["asset"]}
    files = stored_files(media)
    assert len(files) == 3 and not any(unused["asset"] in p.name for p in files)
    private.refresh_from_db()
    assert private.asset_bytes == drawn["bytes"] + logged["bytes"] + fresh["bytes"]


def test_deleting_a_board_deletes_its_files(
    media, private, editor, django_capture_on_commit_callbacks
):
    post(as_user(editor), encoded(picture(), "PNG"))
    assert len(stored_files(media)) == 1
    with django_capture_on_commit_callbacks(execute=True):
        private.delete()
    assert stored_files(media) == []


# -- the admin ------------------------------------------------------------------------


def test_the_admin_lists_uploads_read_only_with_their_board(
    admin_client, media, private, editor
):
    key = post(as_user(editor), encoded(picture(), "PNG")).json()["asset"]
    listing = admin_client.get("/admin/whiteboard/asset/")
    assert listing.status_code == 200
    page = listing.content.decode()
    assert key in page and "secret" in page and "64 × 48" in page
    assert f'href="/b/secret/assets/{key}"' in page
    assert "/admin/whiteboard/asset/add/" not in page
    pk = Asset.objects.get(key=key).pk
    assert admin_client.get(f"/admin/whiteboard/asset/{pk}/delete/").status_code == 403
    assert admin_client.post(f"/admin/whiteboard/asset/{pk}/change/").status_code == 403
    assert Asset.objects.filter(key=key).exists()
