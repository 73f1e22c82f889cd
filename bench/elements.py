"""The elements of the late-join board, the same for our server and the baseline.

A third are 200-point freehand strokes (the heavy part of a real board); the rest
rotate through rectangles, ellipses, lines and short texts.
"""

from __future__ import annotations

import math

STROKE_POINTS = [[i * 2, round(20 * math.sin(i / 9), 1)] for i in range(200)]


def element(n: int) -> dict:
    """Element number n: a stroke when n % 3 == 0, else one of the other kinds."""
    base = {"id": f"late-{n}", "x": (n * 37) % 4000, "y": (n * 53) % 3000}
    style = {"color": "#1e88e5", "width": 2}
    if n % 3 == 0:
        return {**base, "kind": "stroke", "points": STROKE_POINTS, **style}
    other = (n // 3) % 4
    if other == 0:
        return {**base, "kind": "rect", "w": 120, "h": 80, **style}
    if other == 1:
        return {**base, "kind": "ellipse", "w": 90, "h": 60, **style}
    if other == 2:
        return {**base, "kind": "line", "points": [[0, 0], [80, 40]], **style}
    return {**base, "kind": "text", "text": f"note {n}", "size": 16, **style}


def board_elements(count: int) -> list[dict]:
    return [element(n) for n in range(count)]
