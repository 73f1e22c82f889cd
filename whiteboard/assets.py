"""Images on a board: upload, download and the removal of unused ones
(PROTOCOL.md, version 1.1, "Images").

`POST /b/<slug>/assets/` takes one image (the multipart field `file`) from an
editor or owner of an unlocked board, with the session cookie and CSRF token
the board page has. The file is recognised by its first bytes, never by its
name or declared type: PNG, JPEG, GIF and WebP, else 415. It is then decoded
with Pillow (opened for those four formats only) and encoded again, which
drops every piece of metadata: EXIF (its orientation is applied to the pixels
first), XMP, PNG text chunks, GIF comments. Only the pixels, the transparency
and an ICC colour profile (how the pixels' colours are meant, not information
about the picture) are kept. Animated GIF, WebP and PNG (APNG) stay animated,
frame durations and loop count included; every frame counts against
`max_asset_pixels` (w x h x frames), so a small file of many frames cannot make
the server decode without bound.

Statuses, each with {"error": code, "message": text}:

- 401, 403, 404 as for the board page (`history_views.board_and_role`); 403 for
  a viewer and for a locked board; a missing CSRF token is Django's own 403.
- 400 `no_file`, `empty_file`; 400 `bad_image` for a file that starts like one
  of the four formats but does not decode (truncated, corrupt): it is a broken
  request, not an unsupported type.
- 413 `too_large` (more than `max_asset_bytes`, refused from Content-Length or
  while it is received, never read whole), `too_many_pixels` (more than
  `max_asset_pixels`, or Pillow's own decompression bomb error), `board_full`
  (the board's live elements, its images and this one would pass
  `max_board_bytes`).
- 415 `unsupported_type`: anything else (SVG, HTML, BMP, TIFF, ...).
- 503 `busy`: more than WHITEBOARD_IMAGE_QUEUE uploads of this process wait
  for the image worker, or the worker died (see `clean_in_worker`).

A refused upload leaves nothing behind: no row, no file in the storage.

`GET /b/<slug>/assets/<id>` serves the stored file to anyone who may view the
board, with its type, `nosniff`, `Content-Security-Policy: sandbox` and a year
of private caching (an asset never changes). The files live in Django's
default storage (settings.STORAGES), always served from here, after the
access check.

`sweep` (`manage.py cleanassets`) deletes the assets older than an hour that
nothing on their board names: no element (live, or deleted and so still
undoable), no op's entries or undo data, no checkpoint.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import itertools
import logging
import multiprocessing
import os
import re
import threading
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.uploadhandler import FileUploadHandler, StopUpload
from django.db import transaction
from django.db.models import F, Value
from django.db.models.functions import Greatest
from django.http import FileResponse, HttpRequest, HttpResponse, JsonResponse
from django.middleware.csrf import CsrfViewMiddleware
from django.utils import timezone
from django.utils.cache import get_conditional_response
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST, require_safe
from PIL import Image, ImageOps

from . import services, thumbnails
from .changes import megabytes
from .history_views import Refused, board_and_role
from .models import ASSET_EXTENSIONS, Asset, Board, Checkpoint, Element, Op, Role

log = logging.getLogger(__name__)

# Pillow's format names, by what the file's first bytes say, and their types.
CONTENT_TYPES = {
    "PNG": "image/png",
    "JPEG": "image/jpeg",
    "GIF": "image/gif",
    "WEBP": "image/webp",
}
assert set(CONTENT_TYPES.values()) == set(ASSET_EXTENSIONS)
ANIMATED = frozenset({"PNG", "GIF", "WEBP"})
# Room for the multipart envelope around the file in a request's Content-Length.
MULTIPART_SLACK = 64 * 1024
KEY = re.compile(r"[A-Za-z0-9_-]{16,64}\Z")
CACHE_CONTROL = "private, max-age=31536000, immutable"
# WebP is encoded again at this quality unless the original was lossless.
WEBP_QUALITY = 90
# JPEGs keep their own quantisation tables (their quality); else this one.
JPEG_QUALITY = 90
# An upload is left alone this long, so that one about to be used (its element
# not sent yet) is not removed.
MIN_AGE = timedelta(hours=1)
# How an element, an op or a checkpoint names an asset (orjson writes no
# spaces; the standard encoder would).
REFERENCE = re.compile(r'"asset"\s*:\s*"([A-Za-z0-9_-]{16,64})"')


# -- the image ------------------------------------------------------------------------


@dataclass(frozen=True)
class Cleaned:
    data: bytes
    content_type: str
    w: int
    h: int


def sniff(head: bytes) -> str | None:
    """The format the file's first bytes announce, among the four taken."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    return None


def unsupported() -> Refused:
    return Refused(
        415, "unsupported_type", "Only PNG, JPEG, GIF and WebP images can be added."
    )


def too_many_pixels(pixels: int, limit: int) -> Refused:
    return Refused(
        413,
        "too_many_pixels",
        f"The image has {pixels} pixels (every frame counted); at most {limit} "
        "are taken.",
    )


def allow_pixels(limit: int) -> None:
    """Keep Pillow's own decompression bomb check (a warning above
    Image.MAX_IMAGE_PIXELS, an error above twice that, both on open) from
    refusing what our limit allows. Raised, never lowered, and never set back:
    the module-wide value is shared by every thread, so setting and restoring
    it around each call would race; ours is checked on every image anyway."""
    current = Image.MAX_IMAGE_PIXELS
    if current is not None and current < limit:
        Image.MAX_IMAGE_PIXELS = limit


def clean(data: bytes, max_pixels: int) -> Cleaned:
    """The image in `data` encoded again without its metadata, or Refused."""
    kind = sniff(data[:16])
    if kind is None:
        raise unsupported()
    allow_pixels(max_pixels)
    try:
        with Image.open(io.BytesIO(data), formats=[kind]) as probe:
            w, h = probe.size
            if w * h > max_pixels:
                raise too_many_pixels(w * h, max_pixels)
            probe.verify()
        with Image.open(io.BytesIO(data), formats=[kind]) as image:
            # The first frame's: loop, icc_profile (Pillow's keys are strings
            # here; its type allows tuples for other formats).
            info = {str(k): v for k, v in image.info.items()}
            frames, durations = read_frames(image, kind, max_pixels)
            icc = info.get("icc_profile") or None
            out = encode(kind, frames, durations, info, icc, data)
    except Refused:
        raise
    except Image.DecompressionBombError:
        raise Refused(
            413,
            "too_many_pixels",
            f"The image has too many pixels; at most {max_pixels} are taken.",
        )
    except Exception as exc:  # whatever a hostile file makes Pillow raise
        log.info("Image upload refused: %s: %s", type(exc).__name__, exc)
        raise Refused(
            400,
            "bad_image",
            "The image could not be read: the file is damaged or incomplete.",
        )
    first = frames[0]
    return Cleaned(out, CONTENT_TYPES[kind], first.width, first.height)


def read_frames(
    image: Image.Image, kind: str, max_pixels: int
) -> tuple[list[Image.Image], list[float]]:
    """Every frame as Pillow composes it (the first only, for a still format),
    loaded, without its metadata; the pixels of all of them bounded."""
    w, h = image.size
    frames: list[Image.Image] = []
    durations: list[float] = []
    animated = kind in ANIMATED and getattr(image, "is_animated", False)
    for index in itertools.count():
        if index:
            if not animated:
                break
            try:
                image.seek(index)
            except EOFError:
                break
        if (index + 1) * w * h > max_pixels:
            raise too_many_pixels((index + 1) * w * h, max_pixels)
        image.load()
        frame = image.copy()
        if not animated:
            frame = upright(frame)
        durations.append(image.info.get("duration") or 0)
        frame.info = {k: v for k, v in frame.info.items() if k == "transparency"}
        frames.append(frame)
    return frames, durations


def upright(frame: Image.Image) -> Image.Image:
    """The frame turned as its EXIF orientation says (the EXIF itself is not
    kept); unchanged when the EXIF cannot be read."""
    try:
        turned = ImageOps.exif_transpose(frame)
    except Exception:  # a bad EXIF block costs its orientation only
        return frame
    return frame if turned is None else turned


PNG_MODES = frozenset({"1", "L", "LA", "P", "RGB", "RGBA", "I", "I;16"})


def encode(
    kind: str,
    frames: list[Image.Image],
    durations: list[float],
    info: dict[str, Any],
    icc: bytes | None,
    original: bytes,
) -> bytes:
    """`frames` in `kind` again, with nothing but `icc` beside the pixels."""
    out = io.BytesIO()
    extra: dict[str, Any] = {"icc_profile": icc} if icc else {}
    first, rest = frames[0], frames[1:]
    if rest:
        extra |= {"save_all": True, "append_images": rest, "duration": durations}
        if info.get("loop") is not None:
            extra["loop"] = info["loop"]
    if kind == "JPEG":
        image = first if first.mode in {"L", "RGB"} else first.convert("RGB")
        tables = getattr(first, "quantization", None)
        try:
            image.save(out, "JPEG", qtables=tables, **extra)
        except (ValueError, OSError, TypeError):
            out = io.BytesIO()
            image.save(out, "JPEG", quality=JPEG_QUALITY, **extra)
    elif kind == "PNG":
        if rest:
            # Each frame is whole (composed by Pillow): it replaces the last.
            extra |= {"disposal": 0, "blend": 0}
            frames = [png_mode(frame) for frame in frames]
            extra["append_images"] = frames[1:]
        png_mode(first).save(out, "PNG", **extra)
    elif kind == "GIF":
        if rest and any(frame.has_transparency_data for frame in frames):
            # Each frame is whole: drawn on a cleared canvas, pixels can turn
            # transparent again, as they did in the original.
            extra["disposal"] = 2
        first.save(out, "GIF", **extra)
    else:
        lossless = webp_lossless(original)
        if not lossless:
            extra["quality"] = WEBP_QUALITY
        first.save(out, "WEBP", lossless=lossless, **extra)
    return out.getvalue()


def png_mode(frame: Image.Image) -> Image.Image:
    if frame.mode in PNG_MODES:
        return frame
    alpha = "A" in frame.mode or "transparency" in frame.info
    converted = frame.convert("RGBA" if alpha else "RGB")
    converted.info = {}
    return converted


def webp_lossless(data: bytes) -> bool:
    """Whether the WebP holds lossless pictures (VP8L) rather than lossy ones
    (VP8), reading its RIFF chunks (and an animation's frames) in bounds."""
    kinds: set[bytes] = set()
    offset = 12
    while offset + 8 <= len(data) and len(kinds) < 64:
        fourcc = data[offset : offset + 4]
        size = int.from_bytes(data[offset + 4 : offset + 8], "little")
        kinds.add(fourcc)
        if fourcc == b"ANMF":
            kinds.add(data[offset + 8 + 16 : offset + 8 + 20])
        offset += 8 + size + (size & 1)
    return b"VP8L" in kinds and b"VP8 " not in kinds


# -- upload ---------------------------------------------------------------------------


class LimitedUpload(FileUploadHandler):
    """Stops receiving a file as soon as it passes `limit` bytes: the parts
    already received are dropped, the file is not in request.FILES."""

    def __init__(self, request: HttpRequest, limit: int) -> None:
        super().__init__(request)
        self.limit = limit
        self.too_large = False

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes:
        if start + len(raw_data) > self.limit:
            self.too_large = True
            raise StopUpload(connection_reset=False)
        return raw_data

    def file_complete(self, file_size: int) -> None:
        return None


def too_large(size: int, limit: int) -> Refused:
    return Refused(
        413,
        "too_large",
        f"The file has {megabytes(size)}; images of at most {megabytes(limit)} "
        "are taken.",
    )


def board_full(used: int, size: int, limit: int) -> Refused:
    return Refused(
        413,
        "board_full",
        f"This board holds {megabytes(used)} of drawings and images; the image "
        f"({megabytes(size)}) would pass its limit of {megabytes(limit)}. Delete "
        "something first.",
    )


@csrf_exempt
@require_POST
async def upload(request: HttpRequest, slug: str) -> HttpResponse:
    """An upload in four steps, none of which holds the process's one thread
    for sync work (which also commits every board's ops) for long:

    1. the access checks and the request's declared size, before its body is read;
    2. the CSRF check, which parses the multipart body with the handler that
       stops at the size limit in front (Django: "Modifying upload handlers on
       the fly" needs the view exempt, then checked);
    3. decoding and encoding the image in the image worker, a child process,
       while this request only waits;
    4. storing the file and its row, the quota checked with the board locked."""
    limits = services.current_limits()
    try:
        board = await sync_to_async(upload_allowed)(request, slug, limits)
        handler = LimitedUpload(request, limits.max_asset_bytes)
        request.upload_handlers.insert(0, handler)
        received = await sync_to_async(receive)(request, board, handler, limits)
        if isinstance(received, HttpResponse):
            return received  # the CSRF check's refusal
        cleaned = await clean_in_worker(received, limits.max_asset_pixels)
        asset = await sync_to_async(store)(
            request, board, cleaned, limits.max_board_bytes
        )
    except Refused as refused:
        return refused.response()
    body = {
        "asset": asset.key,
        "type": asset.content_type,
        "w": asset.w,
        "h": asset.h,
        "bytes": asset.bytes,
    }
    return JsonResponse(body, status=201)


def upload_allowed(request: HttpRequest, slug: str, limits: Any) -> Board:
    """The board, if the requester may add images to it and the request is
    not larger than an image may be; else Refused."""
    board, role = board_and_role(request, slug)
    if role not in (Role.EDITOR, Role.OWNER):
        raise Refused(403, "forbidden", "Only the board's editors can add images.")
    if board.locked:
        raise Refused(403, "forbidden", "The board is locked.")
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if length > limits.max_asset_bytes + MULTIPART_SLACK:
        raise too_large(length, limits.max_asset_bytes)
    return board


def receive(
    request: HttpRequest, board: Board, handler: LimitedUpload, limits: Any
) -> bytes | HttpResponse:
    """The uploaded file's bytes once the CSRF check passed (else its 403
    response), or Refused."""
    middleware = CsrfViewMiddleware(lambda request: HttpResponse())
    middleware.process_request(request)
    refusal = middleware.process_view(request, receive, (), {})
    if refusal is not None:
        return refusal
    upload = request.FILES.get("file")
    if handler.too_large:
        raise too_large(limits.max_asset_bytes + 1, limits.max_asset_bytes)
    if upload is None:
        raise Refused(400, "no_file", "Choose an image (the field `file`).")
    if upload.size > limits.max_asset_bytes:
        raise too_large(upload.size, limits.max_asset_bytes)
    if not upload.size:
        raise Refused(400, "empty_file", "The file is empty.")
    used = board.live_bytes + board.asset_bytes
    if used >= limits.max_board_bytes:
        raise board_full(used, upload.size, limits.max_board_bytes)
    return upload.read()


# -- the image worker -----------------------------------------------------------------

_pool: ProcessPoolExecutor | None = None
_waiting = 0
_lock = threading.Lock()


def busy() -> Refused:
    return Refused(
        503,
        "busy",
        "The server is busy with other images; try again in a few seconds.",
    )


def image_pool() -> ProcessPoolExecutor:
    """The child processes that decode uploads, started at the first upload.
    Decoding an image of 40 megapixels takes seconds of CPU and hundreds of MB:
    in the server process it would hold the GIL against the event loop of
    every socket, and its memory for good."""
    global _pool
    with _lock:
        if _pool is None:
            _pool = ProcessPoolExecutor(
                max_workers=settings.WHITEBOARD_IMAGE_WORKERS,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=thumbnails.worker_setup,
                # (Overridden settings, as in tests, have no SETTINGS_MODULE.)
                initargs=(
                    settings.SETTINGS_MODULE or os.environ["DJANGO_SETTINGS_MODULE"],
                ),
                # A fresh child now and then gives the memory of large
                # images back to the system.
                max_tasks_per_child=50,
            )
        return _pool


async def clean_in_worker(data: bytes, max_pixels: int) -> Cleaned:
    """`clean` in the image worker; Refused(503, "busy") when
    WHITEBOARD_IMAGE_QUEUE images of this process are waiting already, or
    when the worker died (the system killed it for its memory)."""
    with queued() as pool:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(pool, clean, data, max_pixels)


def clean_in_worker_sync(data: bytes, max_pixels: int) -> Cleaned:
    """`clean_in_worker` for synchronous code: a board import's images."""
    with queued() as pool:
        return pool.submit(clean, data, max_pixels).result()


@contextlib.contextmanager
def queued() -> Iterator[ProcessPoolExecutor]:
    """The image worker, for one image, if fewer than WHITEBOARD_IMAGE_QUEUE
    are waiting for it; a worker that died is dropped (and the image refused)
    so that the next image starts a new one."""
    global _pool, _waiting
    with _lock:
        if _waiting >= settings.WHITEBOARD_IMAGE_QUEUE:
            raise busy()
        _waiting += 1
    pool = None
    try:
        pool = image_pool()
        yield pool
    except BrokenProcessPool:
        log.warning("The image worker died; a new one starts at the next image")
        with _lock:
            if _pool is pool:
                _pool = None
        raise busy()
    finally:
        with _lock:
            _waiting -= 1


def stored_file(board: Board, cleaned: Cleaned, user: Any, name: str) -> Asset:
    """An asset of `board` (a new key) holding `cleaned`, its file written to
    the storage, its row not saved yet: the caller saves it, or deletes the
    file, in its own transaction."""
    asset = Asset(
        board=board,
        content_type=cleaned.content_type,
        w=cleaned.w,
        h=cleaned.h,
        bytes=len(cleaned.data),
        uploaded_by=user,
    )
    asset.file.save(name, ContentFile(cleaned.data), save=False)
    return asset


def store(request: HttpRequest, board: Board, cleaned: Cleaned, limit: int) -> Asset:
    """The file into the storage, then the row and the board's bytes in one
    transaction that checks the quota with the board locked; the file is
    removed again when that refuses or fails. The file is written outside the
    transaction so that a slow storage never holds the board's lock."""
    user = request.user if request.user.is_authenticated else None
    asset = stored_file(board, cleaned, user, "upload")
    try:
        with transaction.atomic():
            row = (
                Board.objects.select_for_update()
                .filter(pk=board.pk)
                .values("live_bytes", "asset_bytes", "locked")
                .first()
            )
            if row is None:
                raise Refused(404, "not_found", "There is no board at this address.")
            if row["locked"]:
                raise Refused(403, "forbidden", "The board is locked.")
            used = row["live_bytes"] + row["asset_bytes"]
            if used + asset.bytes > limit:
                raise board_full(used, asset.bytes, limit)
            asset.save()
            Board.objects.filter(pk=board.pk).update(
                asset_bytes=F("asset_bytes") + asset.bytes
            )
    except BaseException:
        asset.file.storage.delete(asset.file.name)
        raise
    return asset


# -- download -------------------------------------------------------------------------


def not_found() -> Refused:
    return Refused(404, "not_found", "There is no such image on this board.")


@require_safe
def download(request: HttpRequest, slug: str, key: str) -> HttpResponse:
    try:
        board, _ = board_and_role(request, slug)
        asset = None
        if KEY.fullmatch(key):
            asset = Asset.objects.filter(board=board, key=key).first()
        if asset is None:
            raise not_found()
        etag = f'"{asset.key}"'
        unchanged = get_conditional_response(request, etag=etag)
        if unchanged is not None:
            return headers(unchanged, etag)
        try:
            handle = asset.file.storage.open(asset.file.name, "rb")
        except OSError as exc:
            log.warning("Asset %s: its file %s is missing", key, asset.file.name)
            raise not_found() from exc
    except Refused as refused:
        return refused.response()
    response = FileResponse(handle, content_type=asset.content_type)
    return headers(response, etag)


def headers(response: HttpResponse, etag: str) -> HttpResponse:
    response["ETag"] = etag
    response["Cache-Control"] = CACHE_CONTROL
    response["X-Content-Type-Options"] = "nosniff"
    # The file opened on its own (a new tab) runs nothing and reaches nothing.
    response["Content-Security-Policy"] = "sandbox"
    response["Cross-Origin-Resource-Policy"] = "same-origin"
    return response


# -- unused assets --------------------------------------------------------------------


def referenced_keys(board_id: int, *, after_seq: int | None = None) -> set[str]:
    """The asset ids that anything of the board names: every element row (a
    deleted one can come back with undo), every op's entries and undo data,
    every checkpoint (a restore or the history page can bring their elements
    back). With `after_seq`, the ops past it only."""
    ops = Op.objects.filter(board_id=board_id)
    if after_seq is not None:
        ops = ops.filter(last_seq__gt=after_seq)
        sources = [ops.values_list("entries", flat=True)]
        sources.append(ops.values_list("undo", flat=True))
    else:
        sources = [
            Element.objects.filter(board_id=board_id).values_list("body", flat=True),
            ops.values_list("entries", flat=True),
            ops.values_list("undo", flat=True),
            Checkpoint.objects.filter(board_id=board_id).values_list(
                "state", flat=True
            ),
        ]
    found: set[str] = set()
    for texts in sources:
        field = texts.query.values_select[0]
        named = texts.filter(**{f"{field}__contains": '"asset"'})
        for text in named.iterator(chunk_size=200):
            found.update(REFERENCE.findall(text))
    return found


@dataclass(frozen=True)
class Removed:
    slug: str
    key: str
    bytes: int


def sweep(
    *, boards: Iterable[Board] | None = None, dry_run: bool = False
) -> list[Removed]:
    """Delete (or, with `dry_run`, list) the assets older than MIN_AGE that
    nothing of their board names, with their files; lower the boards' bytes.

    A board is searched without a lock, then locked while the ops committed
    meanwhile are searched too and the rows deleted, so that an element added
    during the search keeps its image (an import meanwhile skips the board
    until the next run). The files go once the deletion is committed
    (models.asset_file_delete)."""
    cutoff = timezone.now() - MIN_AGE
    old = Asset.objects.filter(created_at__lt=cutoff)
    chosen = Board.objects.filter(pk__in=old.values("board_id"))
    if boards is not None:
        chosen = chosen.filter(pk__in=[board.pk for board in boards])
    removed: list[Removed] = []
    for board in chosen.order_by("pk"):
        candidates = list(old.filter(board=board).order_by("pk"))
        referenced = referenced_keys(board.pk)
        unused = [asset for asset in candidates if asset.key not in referenced]
        if not unused:
            continue
        if dry_run:
            removed += [Removed(board.slug, a.key, a.bytes) for a in unused]
            continue
        with transaction.atomic():
            now = (
                Board.objects.select_for_update()
                .filter(pk=board.pk)
                .values("seq", "epoch")
                .first()
            )
            if now is None or now["epoch"] != board.epoch:
                continue
            if now["seq"] != board.seq:
                recent = referenced_keys(board.pk, after_seq=board.seq)
                unused = [asset for asset in unused if asset.key not in recent]
            if not unused:
                continue
            total = sum(asset.bytes for asset in unused)
            Asset.objects.filter(pk__in=[asset.pk for asset in unused]).delete()
            Board.objects.filter(pk=board.pk).update(
                asset_bytes=Greatest(F("asset_bytes") - total, Value(0))
            )
        removed += [Removed(board.slug, a.key, a.bytes) for a in unused]
    return removed
