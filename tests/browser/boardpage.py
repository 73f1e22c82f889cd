"""The board page as a user drives it: tools, the mouse, what is on screen.

Everything here goes through the real page in a real Chromium: clicks, key
presses and mouse moves, screenshots, and the WebSocket frames the page sends
(recorded from the browser's own network events). `window.whiteboard` (the
page's read-only debug hook) is used only to wait for the page's state; the
tests also check pixels and the database.
"""

import json

from playwright.sync_api import expect

from .pixels import Shot, wait_for_shot

TIMEOUT_MS = 15_000


class BoardPage:
    def __init__(self, page, origin, slug):
        self.page = page
        self.origin = origin
        self.slug = slug
        self.sent = []  # every text frame the page sent on a WebSocket, decoded
        self.received = []  # and every one it received
        self.sockets = []  # the page's WebSockets, oldest first (urls: .url)
        self.errors = []  # uncaught exceptions in the page
        page.on("websocket", self._watch_socket)
        page.on("pageerror", lambda error: self.errors.append(str(error)))

    def _watch_socket(self, socket):
        self.sockets.append(socket)
        socket.on("framesent", lambda payload: _record(self.sent, payload))
        socket.on("framereceived", lambda payload: _record(self.received, payload))

    @property
    def url(self):
        return f"{self.origin}/b/{self.slug}/"

    def open(self):
        """Load the board page and wait until it is online with the board loaded."""
        self.page.goto(self.url)
        self.wait_status("online")
        return self

    def log_in(self, username, password):
        """Log in with the site's form, which brings the user back to the board."""
        self.page.goto(f"{self.origin}/accounts/login/?next=/b/{self.slug}/")
        self.page.locator("input[name=username]").fill(username)
        self.page.locator("input[name=password]").fill(password)
        self.page.locator("form.account-form button[type=submit]").click()
        self.page.wait_for_url(self.url)
        self.wait_status("online")
        return self

    # -- page state ---------------------------------------------------------------

    @property
    def board(self):
        return self.page.locator("#board")

    @property
    def status(self):
        return self.page.locator("#connection-status")

    def wait_status(self, state, timeout=TIMEOUT_MS):
        expect(self.status).to_have_attribute("data-state", state, timeout=timeout)

    def elements(self):
        return self.page.evaluate("() => window.whiteboard.elements()")

    def wait_for(self, js_condition, arg=None, timeout=TIMEOUT_MS):
        """Wait until `js_condition(elements, arg)` is true in the page.

        The condition is compiled by Playwright (through the DevTools protocol),
        not by the page's `eval`, so a Content-Security-Policy cannot block it.
        """
        self.page.wait_for_function(
            f"arg => window.whiteboard && ({js_condition})"
            "(window.whiteboard.elements(), arg)",
            arg=arg,
            timeout=timeout,
        )

    def wait_count(self, count, timeout=TIMEOUT_MS):
        self.wait_for("(els, n) => els.length === n", count, timeout)
        return self.elements()

    def wait_confirmed(self, timeout=TIMEOUT_MS):
        """Every local op confirmed by the server (the page's own counter)."""
        expect(self.page.locator("#pending-count")).to_have_text("0", timeout=timeout)

    def stored_queue(self):
        """The offline queue in localStorage (`whiteboard.pending.<slug>`), decoded."""
        raw = self.page.evaluate(
            "key => localStorage.getItem(key)", f"whiteboard.pending.{self.slug}"
        )
        return json.loads(raw) if raw else None

    def sent_types(self):
        return [frame.get("type") for frame in self.sent]

    def expect_sent(self, frame_type, action, timeout=TIMEOUT_MS):
        """Do `action()` and wait until the page sends a frame of `frame_type`.

        Frames leave a WebSocket in order, so once this returns every frame the
        page sent before is in `self.sent`: a test can then check what was not sent.
        """
        needle = f'"type":"{frame_type}"'
        with self.sockets[-1].expect_event(
            "framesent",
            lambda payload: needle in str(payload).replace(" ", ""),
            timeout=timeout,
        ):
            action()

    def expect_received(self, predicate, action, timeout=TIMEOUT_MS):
        """Do `action()` and wait for a received frame (a dict) matching `predicate`."""
        with self.sockets[-1].expect_event(
            "framereceived",
            lambda payload: predicate(json.loads(payload)),
            timeout=timeout,
        ):
            action()

    # -- drawing ---------------------------------------------------------------------

    def tool(self, name):
        button = self.page.locator(f'button[data-tool="{name}"]')
        button.click()
        expect(button).to_have_attribute("aria-pressed", "true")

    def color(self, value):
        """Pick a colour: its palette swatch if there is one, else the custom picker."""
        swatch = self.page.locator(f'button[data-color="{value.lower()}"]')
        if swatch.count():
            swatch.click()
            expect(swatch).to_have_attribute("aria-pressed", "true")
        else:
            self.page.locator("input#color").fill(value)
        expect(self.page.locator("input#color")).to_have_value(value.lower())

    def width(self, value):
        """Click the line width preset nearest to `value` (ties: the thicker one)."""
        presets = self.page.locator("button[data-width]")
        found = presets.evaluate_all("buttons => buttons.map(b => b.dataset.width)")
        widths = [int(w) for w in found]
        nearest = min(widths, key=lambda w: (abs(w - value), -w))
        button = self.page.locator(f'button[data-width="{nearest}"]')
        button.click()
        expect(button).to_have_attribute("aria-pressed", "true")
        return nearest

    def at(self, x, y):
        """Page coordinates of the point (x, y) of the drawing surface."""
        box = self.board.bounding_box()
        return box["x"] + x, box["y"] + y

    def drag(self, points, steps=4):
        """Press the left button at the first point, move through the rest, release."""
        mouse = self.page.mouse
        mouse.move(*self.at(*points[0]))
        mouse.down()
        for point in points[1:]:
            mouse.move(*self.at(*point), steps=steps)
        mouse.up()

    def touch_drag(self, fingers):
        """Touch the screen and move: `fingers` is a list of paths, one per finger,
        all as long as each other, in board coordinates (real touch events)."""
        cdp = self.page.context.new_cdp_session(self.page)

        def touch(kind, step):
            points = [
                dict(zip("xy", self.at(*path[step]), strict=True)) for path in fingers
            ]
            cdp.send("Input.dispatchTouchEvent", {"type": kind, "touchPoints": points})

        touch("touchStart", 0)
        for step in range(1, len(fingers[0])):
            touch("touchMove", step)
        cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
        cdp.detach()

    def click_at(self, x, y):
        self.page.mouse.click(*self.at(x, y))

    def type_text(self, x, y, text):
        """Text tool: click at (x, y), type, Enter commits."""
        self.tool("text")
        self.click_at(x, y)
        editor = self.page.locator("textarea#text-editor")
        expect(editor).to_be_visible()
        editor.press_sequentially(text)
        editor.press("Enter")
        expect(editor).to_be_hidden()

    # -- what is on screen --------------------------------------------------------

    def shot(self):
        return Shot(self.board.screenshot())

    def wait_pixels(self, condition, what, timeout=10):
        return wait_for_shot(self.board, condition, timeout, what)


def _record(frames, payload):
    if isinstance(payload, str):
        frames.append(json.loads(payload))
