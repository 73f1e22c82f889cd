"""Small PNGs of boards for the home page and the admin, drawn with Pillow.

`render` draws elements as the page does (static/whiteboard/js/shapes.js):
strokes, lines and arrows with their heads, rects and ellipses with their fill,
text, sticky notes with their wrapped text, and images (their uploads, scaled
down, or a grey box), each with its opacity, the whole board fitted into the
image. The work is bounded: the topmost MAX_ELEMENTS elements, MAX_POINTS points
per element, MAX_IMAGES uploads read per render.

Thumbnails are cached in the Thumbnail table, one per board, labelled with the
seq they show. A server process refreshes the stale ones in the background
(`background_refresh`, run in a child process by realtime/process.py, so the
drawing never holds the GIL against the event loop); `manage.py thumbnails`
does it in the foreground. Nothing renders on a request: a board without a
thumbnail is served `placeholder()`.

This module imports no model at its top: the background worker unpickles a
reference to it before Django is set up in that process (`worker_setup`).
"""

from __future__ import annotations

import functools
import io
import math
import multiprocessing
import multiprocessing.process
import os
import re
import threading
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from PIL import Image, ImageDraw, ImageFont

SIZE = (320, 200)
MARGIN = 8
BACKGROUND = (255, 255, 255)
# Work bounds of one render.
MAX_ELEMENTS = 5000
MAX_POINTS = 256
# A small drawing is shown at most at its size on the page, not blown up.
MAX_SCALE = 1.0
# As on the page (shapes.js): line height of text, the arrow head's barbs.
LINE_HEIGHT = 1.25
BARB_ANGLE = 0.45
# Text smaller than this many pixels is drawn as bars of its colour, not glyphs.
SMALLEST_GLYPHS = 4
# A note's text starts this far (board px) inside its box, as on the page
# (shapes.js, NOTE_PAD).
NOTE_PADDING = 12
# Uploads read for one render (the topmost images); the others are grey boxes,
# as is an image whose upload cannot be read.
MAX_IMAGES = 24
IMAGE_PENDING = (229, 231, 235)
DEJAVU = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
# A board is rendered once it has been left alone this long, not at every op.
QUIET = timedelta(seconds=3)
# Boards refreshed by one background run, oldest change first.
BATCH = 20

COLOR = re.compile(r"#[0-9a-fA-F]{6}\Z")

Box = tuple[float, float, float, float]
Point = tuple[float, float]
Font = ImageFont.FreeTypeFont | ImageFont.ImageFont
# Something to draw on: the image itself (fill is an RGB colour) or an alpha
# mask (fill is the element's opacity as 0..255).
Paint = Callable[[ImageDraw.ImageDraw, Any], None]


# -- drawing --------------------------------------------------------------------------


def render(
    elements: Sequence[dict[str, Any]],
    size: tuple[int, int] = SIZE,
    images: dict[str, Image.Image] | None = None,
) -> bytes:
    """A PNG of `elements` (bottom to top) fitted into `size` with a margin,
    keeping their aspect; a blank white image when there are none. `images`
    holds the uploads of image elements by id, already scaled down
    (`load_images`); an image element without its upload is a grey box."""
    width, height = size
    image = Image.new("RGB", size, BACKGROUND)
    boxed = [(el, box) for el in elements[-MAX_ELEMENTS:] if (box := safe_box(el))]
    if boxed:
        left = min(box[0] for _, box in boxed)
        top = min(box[1] for _, box in boxed)
        right = max(box[2] for _, box in boxed)
        bottom = max(box[3] for _, box in boxed)
        span_x, span_y = max(right - left, 1.0), max(bottom - top, 1.0)
        scale = min(
            (width - 2 * MARGIN) / span_x, (height - 2 * MARGIN) / span_y, MAX_SCALE
        )
        view = View(
            scale,
            (width - span_x * scale) / 2 - left * scale,
            (height - span_y * scale) / 2 - top * scale,
        )
        canvas = Canvas(image, images or {})
        for el, _ in boxed:
            try:
                draw_element(canvas, view, el)
            except (KeyError, TypeError, ValueError, IndexError):
                continue  # a malformed element costs itself, not the board
    out = io.BytesIO()
    image.save(out, "PNG", optimize=True)
    return out.getvalue()


@functools.cache
def placeholder(size: tuple[int, int] = SIZE) -> bytes:
    """The image of a board without a thumbnail yet: blank, made once."""
    return render([], size)


class View:
    """Board coordinates to image pixels."""

    def __init__(self, scale: float, dx: float, dy: float) -> None:
        self.scale, self.dx, self.dy = scale, dx, dy

    def point(self, x: float, y: float) -> Point:
        return (x * self.scale + self.dx, y * self.scale + self.dy)

    def width(self, el: dict[str, Any]) -> int:
        return max(1, round(number(el.get("width", 1)) * self.scale))


class Canvas:
    """The image, and each element's opacity applied once to all its parts."""

    def __init__(
        self, image: Image.Image, uploads: dict[str, Image.Image] | None = None
    ) -> None:
        self.image = image
        self.draw = ImageDraw.Draw(image)
        self.uploads = uploads or {}

    def paint(self, color: tuple[int, int, int], opacity: float, shape: Paint) -> None:
        if opacity >= 1:
            shape(self.draw, color)
            return
        # The parts of a translucent shape (segments, joints, caps, a head)
        # overlap: drawn into one mask, they are blended once, as on a canvas.
        mask = Image.new("L", self.image.size, 0)
        shape(ImageDraw.Draw(mask), max(1, round(255 * opacity)))
        box = mask.getbbox()
        if box is not None:
            self.image.paste(color, box, mask.crop(box))


def draw_element(canvas: Canvas, view: View, el: dict[str, Any]) -> None:
    kind = el["kind"]
    color = rgb(el.get("color")) or (0, 0, 0)
    opacity = min(1.0, max(0.0, number(el.get("opacity", 1))))
    if kind in ("stroke", "line", "arrow"):
        canvas.paint(color, opacity, polyline_shape(view, el))
    elif kind in ("rect", "ellipse"):
        draw_box(canvas, view, el, color, opacity)
    elif kind == "text":
        canvas.paint(color, opacity, text_shape(view, el))
    elif kind == "note":
        draw_note(canvas, view, el, color, opacity)
    elif kind == "image":
        draw_image(canvas, view, el, opacity)


def polyline_shape(view: View, el: dict[str, Any]) -> Paint:
    points = [view.point(x, y) for x, y in absolute_points(el)]
    width = view.width(el)
    head: list[Point] = []
    if el["kind"] == "arrow":
        head = [view.point(*p) for p in arrow_head(el)]

    def shape(draw: ImageDraw.ImageDraw, fill: Any) -> None:
        line(draw, points, fill, width)
        if head:
            line(draw, head, fill, width)

    return shape


def line(draw: ImageDraw.ImageDraw, points: list[Point], fill: Any, width: int) -> None:
    """A polyline with round joints and caps (lineJoin/lineCap "round")."""
    if len(set(points)) > 1:
        draw.line(points, fill=fill, width=width, joint="curve" if width > 2 else None)
    if width > 2 or len(set(points)) == 1:
        radius = max(width / 2, 0.5)
        for x, y in {points[0], points[-1]}:
            draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=fill)


def draw_box(
    canvas: Canvas,
    view: View,
    el: dict[str, Any],
    color: tuple[int, int, int],
    opacity: float,
) -> None:
    """A rect or an ellipse: its fill, then its outline centred on the edge (the
    page fills and strokes separately, each with the element's opacity)."""
    x, y = view.point(number(el["x"]), number(el["y"]))
    w, h = number(el["w"]) * view.scale, number(el["h"]) * view.scale
    left, right = sorted((x, x + w))
    top, bottom = sorted((y, y + h))
    width = view.width(el)
    half = width / 2
    outer = (left - half, top - half, right + half, bottom + half)
    ellipse = el["kind"] == "ellipse"
    fill = rgb(el.get("fill"))
    if fill is not None:

        def inside(draw: ImageDraw.ImageDraw, paint: Any) -> None:
            shape = draw.ellipse if ellipse else draw.rectangle
            shape((left, top, right, bottom), fill=paint)

        canvas.paint(fill, opacity, inside)

    def outline(draw: ImageDraw.ImageDraw, paint: Any) -> None:
        shape = draw.ellipse if ellipse else draw.rectangle
        shape(outer, outline=paint, width=width)

    canvas.paint(color, opacity, outline)


def text_shape(view: View, el: dict[str, Any]) -> Paint:
    size = number(el["size"])
    lines = str(el["text"]).split("\n")
    px = size * view.scale
    x, y = view.point(number(el["x"]), number(el["y"]))
    step = px * LINE_HEIGHT

    def shape(draw: ImageDraw.ImageDraw, fill: Any) -> None:
        if px < SMALLEST_GLYPHS:
            # Too small to read: a bar per line, as wide as the text.
            for n, text in enumerate(lines):
                length = text_width(text, size) * view.scale
                if length > 0:
                    top = y + n * step + px * 0.2
                    bottom = top + max(px * 0.6, 1)
                    draw.rectangle((x, top, x + length, bottom), fill=fill)
            return
        font = font_of(min(round(px), 400))
        for n, text in enumerate(lines):
            draw.text((x, y + n * step), text, fill=fill, font=font, anchor="la")

    return shape


def draw_note(
    canvas: Canvas,
    view: View,
    el: dict[str, Any],
    color: tuple[int, int, int],
    opacity: float,
) -> None:
    """A sticky note: its box in its fill, then its text wrapped inside it."""
    x, y = view.point(number(el["x"]), number(el["y"]))
    w, h = number(el["w"]) * view.scale, number(el["h"]) * view.scale
    fill = rgb(el.get("fill")) or (255, 243, 163)

    def box(draw: ImageDraw.ImageDraw, paint: Any) -> None:
        draw.rectangle((x, y, x + w, y + h), fill=paint)

    canvas.paint(fill, opacity, box)
    size = number(el["size"])
    pad = NOTE_PADDING
    lines = wrap(str(el["text"]), size, number(el["w"]) - 2 * pad)
    room = max(0, int((number(el["h"]) - 2 * pad) // (size * LINE_HEIGHT)))
    if not lines or not room:
        return
    inner = {**el, "x": number(el["x"]) + pad, "y": number(el["y"]) + pad}
    inner["text"] = "\n".join(lines[:room])
    canvas.paint(color, opacity, text_shape(view, inner))


def wrap(text: str, size: float, width: float) -> list[str]:
    """The lines of a note's text as the page wraps them: at spaces where a
    word fits, inside a word where it does not, and at every newline."""
    lines: list[str] = []
    for paragraph in text.split("\n"):
        line = ""
        for word in paragraph.split(" "):
            candidate = f"{line} {word}" if line else word
            if text_width(candidate, size) <= width or not line:
                line = candidate
            else:
                lines.append(line)
                line = word
            while len(line) > 1 and text_width(line, size) > width:
                cut = len(line) - 1
                while cut > 1 and text_width(line[:cut], size) > width:
                    cut -= 1
                lines.append(line[:cut])
                line = line[cut:]
        lines.append(line)
    return lines


def draw_image(canvas: Canvas, view: View, el: dict[str, Any], opacity: float) -> None:
    """An image element: its upload stretched into its box (a negative side
    flips it), or a grey box while the upload is not at hand."""
    x, y = view.point(number(el["x"]), number(el["y"]))
    w, h = number(el["w"]) * view.scale, number(el["h"]) * view.scale
    left, right = sorted((x, x + w))
    top, bottom = sorted((y, y + h))
    width, height = round(right - left), round(bottom - top)
    upload = canvas.uploads.get(str(el.get("asset")))
    if upload is None or width < 1 or height < 1:

        def grey(draw: ImageDraw.ImageDraw, paint: Any) -> None:
            draw.rectangle((left, top, right, bottom), fill=paint)

        canvas.paint(IMAGE_PENDING, opacity, grey)
        return
    picture = upload.resize((width, height), Image.Resampling.BILINEAR)
    if w < 0:
        picture = picture.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    if h < 0:
        picture = picture.transpose(Image.Transpose.FLIP_TOP_BOTTOM)
    alpha = picture.getchannel("A")
    if opacity < 1:
        alpha = alpha.point(lambda a: round(a * opacity))
    canvas.image.paste(picture.convert("RGB"), (round(left), round(top)), alpha)


def load_images(
    board_id: int, elements: Sequence[dict[str, Any]], size: tuple[int, int] = SIZE
) -> dict[str, Image.Image]:
    """The uploads the topmost MAX_IMAGES image elements show, read from the
    storage and scaled down to at most the thumbnail's size (RGBA). One that
    cannot be read is left out (drawn grey)."""
    from .models import Asset

    keys: list[str] = []
    for el in reversed(elements):
        key = el.get("asset") if el.get("kind") == "image" else None
        if isinstance(key, str) and key not in keys:
            keys.append(key)
            if len(keys) == MAX_IMAGES:
                break
    loaded: dict[str, Image.Image] = {}
    for asset in Asset.objects.filter(board_id=board_id, key__in=keys):
        try:
            with asset.file.open("rb") as stored, Image.open(stored) as picture:
                picture.draft("RGB", size)  # JPEG: decode at a fraction
                picture.thumbnail(size)
                loaded[asset.key] = picture.convert("RGBA")
        except (OSError, ValueError, Image.DecompressionBombError):
            continue
    return loaded


# -- geometry (shapes.js) --------------------------------------------------------------


def number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"not a number: {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"not finite: {value!r}")
    return float(value)


def rgb(value: Any) -> tuple[int, int, int] | None:
    if not isinstance(value, str) or not COLOR.match(value):
        return None
    return (int(value[1:3], 16), int(value[3:5], 16), int(value[5:7], 16))


def absolute_points(el: dict[str, Any]) -> list[Point]:
    """The element's points on the board, at most MAX_POINTS of them (every
    n-th, the last one kept): a thumbnail shows no more detail than that."""
    x, y = number(el["x"]), number(el["y"])
    points = el["points"]
    if not points:
        raise ValueError("no points")
    if len(points) > MAX_POINTS:
        stride = math.ceil(len(points) / MAX_POINTS)
        points = [*points[::stride], points[-1]]
    return [(x + number(px), y + number(py)) for px, py in points]


def arrow_head(el: dict[str, Any]) -> list[Point]:
    """The two barbs and the tip, at the last point (shapes.js, arrowHead)."""
    x, y = number(el["x"]), number(el["y"])
    points = el["points"]
    tx, ty = x + number(points[-1][0]), y + number(points[-1][1])
    if len(points) > 1:
        fx, fy = x + number(points[-2][0]), y + number(points[-2][1])
    else:
        fx, fy = tx - 1, ty
    if fx == tx and fy == ty:
        fx -= 1
    angle = math.atan2(ty - fy, tx - fx)
    length = max(10.0, number(el.get("width", 1)) * 3)

    def barb(turn: float) -> Point:
        return (
            tx - length * math.cos(angle + turn),
            ty - length * math.sin(angle + turn),
        )

    return [barb(BARB_ANGLE), (tx, ty), barb(-BARB_ANGLE)]


def safe_box(el: Any) -> Box | None:
    """The element's box on the board, stroke included; None if malformed."""
    try:
        return box_of(el)
    except (KeyError, TypeError, ValueError, IndexError, AttributeError):
        return None


def box_of(el: dict[str, Any]) -> Box:
    kind = el["kind"]
    x, y = number(el["x"]), number(el["y"])
    if kind == "text":
        size = number(el["size"])
        lines = str(el["text"]).split("\n")
        width = max(max(text_width(t, size) for t in lines), size * 0.3)
        return (x, y, x + width, y + len(lines) * size * LINE_HEIGHT)
    pad = number(el.get("width", 1)) / 2
    if kind in ("stroke", "line", "arrow"):
        points = absolute_points(el)
        xs, ys = [p[0] for p in points], [p[1] for p in points]
        if kind == "arrow":
            pad += max(10.0, number(el.get("width", 1)) * 3)
        return (min(xs) - pad, min(ys) - pad, max(xs) + pad, max(ys) + pad)
    if kind in ("rect", "ellipse", "note", "image"):
        if kind in ("note", "image"):
            pad = 0  # no outline
        w, h = number(el["w"]), number(el["h"])
        left, right = sorted((x, x + w))
        top, bottom = sorted((y, y + h))
        return (left - pad, top - pad, right + pad, bottom + pad)
    raise ValueError(f"unknown kind {kind!r}")


# -- fonts -----------------------------------------------------------------------------

# Text is measured with the font at this size and scaled.
MEASURE_PX = 100


@functools.lru_cache(maxsize=64)
def font_of(px: int) -> Font:
    """DejaVu Sans (Debian's fonts-dejavu-core) when present, else Pillow's own."""
    px = max(1, px)
    if os.path.exists(DEJAVU):
        return ImageFont.truetype(DEJAVU, px)
    return ImageFont.load_default(size=px)


def text_width(text: str, size: float) -> float:
    return float(font_of(MEASURE_PX).getlength(text)) * size / MEASURE_PX


# -- the cache -------------------------------------------------------------------------


def stale_boards(
    limit: int | None, *, now: datetime | None = None, quiet: timedelta = QUIET
) -> list[int]:
    """Ids of up to `limit` (None: all) boards whose thumbnail does not show
    their current seq and that nobody changed for `quiet` before `now`, oldest
    change first. A board never changed (seq 0) without a thumbnail is left
    out: the placeholder is what it looks like."""
    from django.db.models import F, Q
    from django.utils import timezone

    from .models import Board

    now = now or timezone.now()
    missing = Q(thumbnail__isnull=True) & Q(seq__gt=0)
    behind = Q(thumbnail__isnull=False) & ~Q(thumbnail__seq=F("seq"))
    boards = Board.objects.filter(missing | behind, changed_at__lte=now - quiet)
    ids = boards.order_by("changed_at", "pk").values_list("pk", flat=True)
    return list(ids if limit is None else ids[:limit])


def board_state(board_id: int) -> tuple[int, list[dict[str, Any]]] | None:
    """(seq, the topmost MAX_ELEMENTS live elements bottom to top), read by one
    statement (the board joined to its elements), so the elements are those of
    that seq on every database; None if the board is gone."""
    import orjson
    from django.db.models import FilteredRelation, Q

    from .models import Board

    rows = (
        Board.objects.filter(pk=board_id)
        .annotate(
            # `IN (false)`, as ElementQuerySet.live: SQLite's index needs it.
            live=FilteredRelation(
                "elements", condition=Q(elements__deleted__in=[False])
            )
        )
        .order_by("-live__z")
        .values_list("seq", "live__body")[:MAX_ELEMENTS]
    )
    rows = list(rows)
    if not rows:
        return None
    elements = [orjson.loads(body) for _, body in reversed(rows) if body is not None]
    return rows[0][0], elements


def refresh(board_id: int) -> int | None:
    """Render the board as it is now and store it; the seq stored, or None if
    the board is gone."""
    from django.db import IntegrityError

    from .models import Thumbnail

    state = board_state(board_id)
    if state is None:
        return None
    seq, elements = state
    png = render(elements, images=load_images(board_id, elements))
    try:
        Thumbnail.objects.update_or_create(
            board_id=board_id, defaults={"seq": seq, "png": png}
        )
    except IntegrityError:  # the board was deleted meanwhile
        return None
    return seq


def refresh_stale(limit: int = BATCH, *, now: datetime | None = None) -> int:
    """Refresh up to `limit` stale thumbnails; how many were stored."""
    return sum(refresh(pk) is not None for pk in stale_boards(limit, now=now))


# -- the background worker -------------------------------------------------------------


def worker_setup(settings_module: str) -> None:
    """The child process's initializer: Django with the server's settings, and
    a watch on the server process, which the child does not outlive."""
    os.environ["DJANGO_SETTINGS_MODULE"] = settings_module
    # Not one of the host's processes in /metrics (whiteboard/metrics.py): its
    # metrics stay in its own memory, unread, and /metrics lists the daphnes.
    for name in ("WHITEBOARD_METRICS_DIR", "PROMETHEUS_MULTIPROC_DIR"):
        os.environ.pop(name, None)
    parent = multiprocessing.parent_process()
    if parent is not None:
        threading.Thread(
            target=exit_with, args=(parent,), name="parent-watch", daemon=True
        ).start()
    import django

    django.setup()


def exit_with(parent: multiprocessing.process.BaseProcess) -> None:
    """End this process when `parent` ends. A server stopped by a signal it
    cannot handle (SIGKILL, the OOM killer) never shuts the pool down, and the
    worker, which holds both ends of its task queue, would wait for ever."""
    parent.join()
    os._exit(0)


def background_refresh(limit: int = BATCH) -> int:
    """`refresh_stale` in the worker, which has no request cycle to close a
    connection the database dropped (or one past CONN_MAX_AGE): it is done here."""
    from django.db import close_old_connections

    close_old_connections()
    try:
        return refresh_stale(limit)
    finally:
        close_old_connections()
