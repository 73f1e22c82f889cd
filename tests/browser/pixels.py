"""Reading what the user actually sees: pixels of a real browser screenshot."""

import io
import time

from PIL import Image, ImageChops


def hex_rgb(color):
    return tuple(int(color[i : i + 2], 16) for i in (1, 3, 5))


class Shot:
    """One screenshot of an element, decoded: where a given colour is."""

    def __init__(self, png):
        self.png = png
        self.image = Image.open(io.BytesIO(png)).convert("RGB")

    def mask(self, color, tolerance=40):
        """A 1-bit image: white where a pixel is within `tolerance` of `color`."""
        bands = []
        for band, value in zip(self.image.split(), hex_rgb(color), strict=True):
            low, high = value - tolerance, value + tolerance
            bands.append(band.point(lambda v, lo=low, hi=high: 255 * (lo <= v <= hi)))
        both = ImageChops.logical_and(bands[0].convert("1"), bands[1].convert("1"))
        return ImageChops.logical_and(both, bands[2].convert("1"))

    def count(self, color, tolerance=40):
        """How many pixels have `color` (#rrggbb)."""
        return self.mask(color, tolerance).convert("L").histogram()[255]

    def box(self, color, tolerance=40):
        """The bounding box (left, top, right, bottom) of `color`, or None."""
        return self.mask(color, tolerance).getbbox()


def wait_for_shot(locator, condition, timeout=10, what="the expected pixels"):
    """Screenshot `locator` until `condition(shot)` holds; return that shot.

    A canvas changes on the browser's next frame, not when the DOM does, so the
    check is retried on fresh screenshots (each one waits for the page to paint)
    until it holds or the deadline passes.
    """
    deadline = time.monotonic() + timeout
    while True:
        shot = Shot(locator.screenshot())
        if condition(shot):
            return shot
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not on screen after {timeout} s")
