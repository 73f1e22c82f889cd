"""Frame times of panning and zooming a 10,000-element board in headless Chromium.

One run: a throwaway site (SQLite), a real daphne on a free loopback port, a
board filled with 10,000 elements through the protocol (a third of them
200-point strokes; lines, arrows, rectangles, ellipses and texts for the rest)
and an empty board; then Debian's Chromium (Playwright, as the browser tests
drive it) opens the board page in three setups, side by side:

    big       the 10,000-element board, as users get it (caching on)
    nocache   the same board with `?nocache=1`: every element redrawn each frame
    empty     an empty board (caching on): the page's fixed cost per frame

Each setup is zoomed to fit its content, then driven by scripted wheel zooms
(in and out around the middle) and middle-button drags (pans), in rounds that
alternate between the setups so that a noisy machine disturbs them alike.

What one sample is: the main-thread time of the frame that shows one input,
from the start of that frame's first requestAnimationFrame callback to the end
of a callback queued after the page's own render in the same frame, which reads
one pixel of the board's canvas so that the canvas's pending drawing is
rasterised inside the measurement. Samples whose callbacks did not land in the
same frame are dropped. After each gesture the one full redraw of the page's
cached layer is measured apart (`settle`). Medians and ratios are printed as a
Markdown table, every sample saved in bench/results/; the exit status never
depends on timing.

    .venv/bin/python bench/frames.py                  # 10,000 elements, 3 rounds
    .venv/bin/python bench/frames.py --elements 2000 --rounds 1 --steps 20
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from playwright.sync_api import sync_playwright  # noqa: E402

from tests.live import (  # noqa: E402
    VIEWPORT,
    Database,
    Server,
    launch_chromium,
    read_state,
)

RESULTS = REPO / "bench" / "results"
SETUPS = {"big": "", "nocache": "?nocache=1", "empty": ""}
KINDS = ("line", "arrow", "rect", "ellipse", "text")
BATCH = 400  # adds in flight while filling the board

# -- the board ------------------------------------------------------------------


def element(n, rng, spread):
    """Element n: every third a 200-point stroke, the others the other kinds."""
    x, y = rng.uniform(0, spread), rng.uniform(0, spread * 0.6)
    style = {"color": f"#{rng.randrange(0x1000000):06x}", "width": rng.randint(1, 6)}
    base = {"id": f"e{n}", "x": round(x, 1), "y": round(y, 1), **style}
    if n % 3 == 0:
        return {**base, "kind": "stroke", "points": walk(rng, 200)}
    kind = KINDS[n % len(KINDS)]
    if kind in ("line", "arrow"):
        return {**base, "kind": kind, "points": [[0, 0], walk(rng, 2)[1]]}
    if kind == "text":
        return {**base, "kind": "text", "text": f"Note {n}", "size": 18}
    return {**base, "kind": kind, "w": rng.uniform(10, 120), "h": rng.uniform(10, 80)}


def walk(rng, count):
    """A smooth random walk of `count` points, as a hand draws, relative to 0,0."""
    points, x, y, angle = [], 0.0, 0.0, rng.uniform(0, 2 * math.pi)
    for _ in range(count):
        points.append([round(x, 1), round(y, 1)])
        angle += rng.uniform(-0.3, 0.3)
        x, y = x + 2 * math.cos(angle), y + 2 * math.sin(angle)
    return points


async def fill(server, slug, count, seed=1):
    """Add `count` elements through the protocol; return when all are committed."""
    rng = random.Random(seed)
    spread = 60 * math.sqrt(count)
    async with server.open(slug) as ws:
        await read_state(ws)
        for start in range(0, count, BATCH):
            cids = set()
            for n in range(start, min(count, start + BATCH)):
                cids.add(f"bench-add-{n:06d}")
                frame = {"type": "add", "cid": f"bench-add-{n:06d}"}
                await ws.send(json.dumps({**frame, "element": element(n, rng, spread)}))
            while cids:
                frame = json.loads(await asyncio.wait_for(ws.recv(), 60))
                if frame["type"] == "error":
                    raise RuntimeError(f"the server refused an add: {frame}")
                if frame["type"] == "ops":
                    cids -= {op["cid"] for op in frame["ops"]}


# -- measuring in the page ---------------------------------------------------------

# When the input event reaches the window on its way down (capture), queue a
# callback for the frame that will show it; when it comes back up (bubble), the
# page's own handler has run and queued its render, so a callback queued now
# runs after that render, in the same frame. One sample: start of the first
# callback to end of the last, with the pixel read that flushes the canvas.
ARM = """type => { window.__frame = new Promise(resolve => {
    let start = null;
    window.addEventListener(type, () => requestAnimationFrame(t => {
        start = [t, performance.now()];
    }), {capture: true, once: true, passive: true});
    window.addEventListener(type, () => requestAnimationFrame(t => {
        document.getElementById('board-canvas').getContext('2d')
            .getImageData(0, 0, 1, 1);
        const now = performance.now();
        resolve(start && start[0] === t ? now - start[1] : null);
    }), {once: true, passive: true});
}); }"""


def measured(page, event_type, action):
    """The frame time (ms) of the frame that shows `action`, or None."""
    page.evaluate(ARM, event_type)
    action()
    return page.evaluate("() => window.__frame")


def zoom_gesture(page, center, steps):
    """Wheel zooms at the middle: in for half the steps, then out again."""
    page.mouse.move(*center)
    samples = []
    for i in range(steps):
        delta = -60 if i < steps // 2 else 60
        samples.append(measured(page, "wheel", lambda d=delta: page.mouse.wheel(0, d)))
    return samples


def pan_gesture(page, center, steps):
    """A middle-button drag round a circle of 150 px radius."""
    mouse = page.mouse
    mouse.move(center[0] + 150, center[1])
    mouse.down(button="middle")
    samples = []
    for i in range(1, steps + 1):
        angle = 2 * math.pi * i / steps
        point = (center[0] + 150 * math.cos(angle), center[1] + 150 * math.sin(angle))
        samples.append(measured(page, "pointermove", lambda p=point: mouse.move(*p)))
    mouse.up(button="middle")
    return samples


# After a gesture the page redraws its cached layer once, at the new view
# (120 ms after the last input). That frame is measured apart: the longest
# animation frame over 50 ms (the browser's long-animation-frame entries) in
# the half second after the gesture, or 0 when there was none.
SETTLE = """() => new Promise(resolve => {
    const long = [];
    const observer = new PerformanceObserver(list => {
        for (const entry of list.getEntries()) long.push(entry.duration);
    });
    observer.observe({type: 'long-animation-frame'});
    setTimeout(() => {
        for (const entry of observer.takeRecords()) long.push(entry.duration);
        observer.disconnect();
        resolve(long.length ? Math.max(...long) : 0);
    }, 500);
})"""


def settle(page):
    """Let the page finish its full render after a gesture; return its duration."""
    return page.evaluate(SETTLE)


# -- the run -----------------------------------------------------------------------


def open_setup(browser, server, slug, query, count):
    context = browser.new_context(viewport=VIEWPORT, device_scale_factor=1)
    page = context.new_page()
    page.goto(f"{server.origin}/b/{slug}/{query}")
    page.wait_for_function(
        "n => window.whiteboard && window.whiteboard.status === 'online'"
        " && window.whiteboard.seq >= n",
        arg=count,
        timeout=120_000,
    )
    page.locator("#board").focus()
    page.keyboard.press("f")  # fit to content: every element in view
    box = page.locator("#board").bounding_box()
    center = (box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    return page, center


def run(args):
    tmp = Path(tempfile.mkdtemp(prefix="bench-frames-"))
    database = Database(tmp)
    server = Server(database, tmp, WHITEBOARD_OPS_PER_SECOND=100_000).start()
    try:
        big, empty = database.create_board(), database.create_board()
        started = time.monotonic()
        asyncio.run(fill(server, big, args.elements))
        print(f"filled {args.elements} elements in {time.monotonic() - started:.1f} s")
        return measure_all(server, {"big": big, "nocache": big, "empty": empty}, args)
    finally:
        server.stop()


def measure_all(server, slugs, args):
    samples = {(s, g): [] for s in SETUPS for g in ("zoom", "pan", "settle")}
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        pages = {}
        for setup, query in SETUPS.items():
            count = args.elements if slugs[setup] == slugs["big"] else 0
            pages[setup] = open_setup(browser, server, slugs[setup], query, count)
        for _ in range(args.rounds):
            for setup, (page, center) in pages.items():
                for gesture, drive in (("zoom", zoom_gesture), ("pan", pan_gesture)):
                    samples[setup, gesture] += drive(page, center, args.steps)
                    samples[setup, "settle"].append(settle(page))
        browser.close()
    return samples


def median(values):
    kept = [v for v in values if v is not None]
    return (statistics.median(kept) if kept else float("nan")), len(kept)


def table(samples):
    """Markdown: median frame time per setup and gesture, and the ratios."""
    lines = [
        "| gesture | setup | samples | median ms | / empty | / nocache |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for gesture in ("zoom", "pan", "settle"):
        medians = {setup: median(samples[setup, gesture]) for setup in SETUPS}
        empty, nocache = medians["empty"][0], medians["nocache"][0]
        for setup, (value, kept) in medians.items():
            lines.append(
                f"| {gesture} | {setup} | {kept} | {value:.2f} "
                f"| {ratio(value, empty)} | {ratio(value, nocache)} |"
            )
    return "\n".join(lines)


def save(samples, args):
    """Every sample, for a second look: bench/results/frames-<time>.json."""
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"frames-{time.strftime('%Y%m%d-%H%M%S')}.json"
    raw = {f"{setup}/{gesture}": values for (setup, gesture), values in samples.items()}
    path.write_text(json.dumps({"args": vars(args), "samples": raw}, indent=1))
    return path


def ratio(value, base):
    return f"{value / base:.2f}" if base and not math.isnan(base) else "-"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--elements", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=40, help="inputs per gesture")
    args = parser.parse_args(argv)
    samples = run(args)
    print(f"samples saved in {save(samples, args)}")
    print(table(samples))
    dropped = sum(s is None for values in samples.values() for s in values)
    print(
        f"\n{dropped} of {sum(map(len, samples.values()))} samples dropped "
        "(callbacks in different frames)"
    )


if __name__ == "__main__":
    main()
