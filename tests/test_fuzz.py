"""A protocol fuzzer against a live daphne: every frame answered as PROTOCOL.md says.

An anonymous client on a public board (an editor) sends seeded, generated and
mutated frames (tests/fuzzframes.py) in batches, each closed by a ping whose
pong is the barrier; immediate answers are matched in order, answers given
after a commit by cid. A bystander on the same board must see only the valid
ops and volatile messages; the stored board must equal the fuzzer's model and
hold only valid elements; daphne must log no error. Set FUZZ_SEED and
FUZZ_FRAMES to explore further; a failure prints the seed and the frames.
"""

import asyncio
import collections
import json
import os
import random

import pytest
from websockets.exceptions import ConnectionClosed

from tests.fuzzframes import (
    BARRIER,
    NOISE,
    Case,
    Expect,
    Fuzzer,
    Limits,
    same,
)
from tests.live import read_state
from whiteboard import protocol as p

pytestmark = pytest.mark.live

SEED = int(os.environ.get("FUZZ_SEED", "20261201"))
REFUSALS_ALLOWED = 100
ANSWER_TIMEOUT = 20
MAX_REPORTED = 30

CONFIGS = {
    # The defaults; the rate limit is lifted so that only validation answers.
    "default": ({"WHITEBOARD_OPS_PER_SECOND": 10**6}, 15_000),
    # A board that fills up, small frames and short strokes.
    "tight": (
        {
            "WHITEBOARD_OPS_PER_SECOND": 10**6,
            "WHITEBOARD_MAX_FRAME_BYTES": 8192,
            "WHITEBOARD_MAX_POINTS": 20,
            "WHITEBOARD_MAX_ELEMENTS": 40,
        },
        5_000,
    ),
}


def decode(text):
    """A server frame; one nested too deep to decode here is shown as such."""
    try:
        return json.loads(text)
    except RecursionError:
        return {"type": "undecodable", "text": text[:200]}


class Broken(Exception):
    """The connection ended or stalled where it should not have."""


class Bystander:
    """A second connection that only reads, and records everything it gets."""

    def __init__(self, ws):
        self.ws = ws
        self.entries = {}  # seq -> op entry
        self.problems = []
        self.progress = asyncio.Condition()
        self.counts = collections.Counter()

    async def run(self):
        try:
            while True:
                frame = decode(await self.ws.recv())
                self.counts[frame["type"]] += 1
                self.check(frame)
                async with self.progress:
                    self.progress.notify_all()
        except ConnectionClosed as closed:
            self.problems.append(f"bystander disconnected: {closed!r}")

    def check(self, frame):
        kind = frame["type"]
        if kind == "ops":
            for entry in frame["ops"]:
                if entry["seq"] in self.entries:
                    self.problems.append(f"bystander got seq {entry['seq']} twice")
                self.entries[entry["seq"]] = entry
        elif kind == "draft":
            element = frame["element"]
            if element is not None:
                limits = p.Limits()
                try:
                    normal = p.validate_element(element, limits, draft=True)
                except p.ProtocolError as exc:
                    self.problems.append(f"bystander got an invalid draft: {exc}")
                    return
                if not same(normal, element):
                    self.problems.append(f"draft not normalized: {element}")
        elif kind == "cursors":
            for cursor in frame["cursors"]:
                ok = all(
                    type(cursor[a]) in (int, float) and abs(cursor[a]) <= p.COORD_LIMIT
                    for a in ("x", "y")
                )
                if not ok:
                    self.problems.append(f"bystander got a bad cursor: {cursor}")
        elif kind == "viewports":
            for view in frame["viewports"]:
                ok = (
                    set(view) == {"sid", "x", "y", "w", "h"}
                    and type(view["sid"]) is str
                    and all(
                        type(view[a]) in (int, float)
                        and abs(view[a]) <= p.COORD_LIMIT
                        and (a in ("x", "y") or view[a] > 0)
                        for a in ("x", "y", "w", "h")
                    )
                )
                if not ok:
                    self.problems.append(f"bystander got a bad viewport: {view}")
        elif kind not in {"joined", "left"}:
            self.problems.append(f"bystander got {str(frame)[:300]}")

    async def reach(self, seq):
        async with asyncio.timeout(ANSWER_TIMEOUT), self.progress:
            await self.progress.wait_for(
                lambda: seq == 0 or seq in self.entries or self.problems
            )


class Fuzz:
    """Drives one server and board: connections, batches, answers, problems."""

    def __init__(self, server, slug, rng, frames):
        self.server = server
        self.slug = slug
        self.rng = rng
        self.frames = frames
        self.sent = 0
        self.problems = []
        self.labels = collections.Counter()
        self.seen = {}  # seq -> op entry, as the fuzzing connection received them
        self.carry = None
        self.barriers = 0
        self.fuzzer = None
        self.deliberate_1008 = 0

    def problem(self, text):
        self.problems.append(text)

    async def run(self, bystander):
        while self.sent < self.frames:
            query, since = self.since_query()
            async with self.server.open(self.slug, query) as ws:
                try:
                    welcome, state = await read_state(ws)
                except ConnectionClosed as closed:
                    code = closed.rcvd.code if closed.rcvd else None
                    self.problem(f"connect with {query[:40]}...: closed {code}")
                    continue
                self.check_state(welcome, state, query, since)
                try:
                    await self.connection(ws)
                except Broken as broken:
                    self.problem(str(broken))
                    await self.resync(bystander)

    def since_query(self):
        """A reconnect's query, and the seq a replay must start after (None for
        a snapshot): the fuzzer is the board's only writer, so it knows S."""
        if self.fuzzer is None or self.rng.random() < 0.6:
            return "", None
        seq = self.fuzzer.board.seq
        back = max(0, seq - self.rng.randint(0, 5))
        return self.rng.choice(
            [
                (f"?since={seq}", seq),
                (f"?since={back}", back),
                (f"?since={'0' * 30}{seq}", seq),
                ("?since=-1", None),
                ("?since=%2B3", None),
                ("?since=1&since=x", None),
                (f"?since={seq + 1}", None),
                (f"?since={2**64}", None),
                (f"?since={'9' * 5000}", None),  # ahead of any seq: a snapshot
            ]
        )

    def check_state(self, welcome, state, query, since):
        """The state a connection gets must be the model's board, or a replay
        of exactly the ops after `since`."""
        limits = Limits.of(welcome)
        if self.fuzzer is None:
            self.fuzzer = Fuzzer(self.rng, limits)
        self.fuzzer.start(welcome)
        board = self.fuzzer.board
        if since is not None:
            replayed = [e for frame in state for e in frame.get("ops", [None])]
            wanted = [self.seen[s] for s in range(since + 1, welcome["seq"] + 1)]
            if not same(replayed, wanted):
                self.problem(f"connect with {query}: not the replay of the ops")
            return
        elements = [e for frame in state for e in frame.get("elements", [None])]
        if welcome["seq"] != board.seq or not same(elements, board.elements()):
            self.problem(
                f"state at connect ({query[:40]}) differs from the model: seq "
                f"{welcome['seq']} vs {board.seq}, {len(elements)} vs "
                f"{len(board.elements())} elements"
            )
            board.reset(welcome["seq"], [e for e in elements if e is not None])

    async def resync(self, bystander):
        """After a broken connection, take the server's state as the truth."""
        async with self.server.open(self.slug) as ws:
            welcome, state = await read_state(ws)
        await bystander.reach(welcome["seq"])
        elements = [e for frame in state for e in frame["elements"]]
        board = self.fuzzer.board
        board.reset(welcome["seq"], elements)
        for entry in bystander.entries.values():
            board.committed[entry["cid"]] = max(
                board.committed.get(entry["cid"], 0), entry["seq"]
            )
            self.seen.setdefault(entry["seq"], entry)

    # -- one connection ------------------------------------------------------------

    async def connection(self, ws):
        refusals = 0
        while self.sent < self.frames:
            batch, terminal = self.next_batch(REFUSALS_ALLOWED - refusals)
            if batch:
                refusals += await self.exchange(ws, batch)
            if terminal is not None:
                await self.terminal(ws, terminal)
                return
            if refusals >= REFUSALS_ALLOWED:
                if self.rng.random() < 0.3:
                    await self.refusal_101(ws)
                return

    def next_batch(self, budget):
        batch, planned = [], 0
        size = self.rng.randint(1, 80)
        while len(batch) < size and self.sent < self.frames:
            case = self.carry or self.fuzzer.next_case()
            self.carry = None
            if case.expect.kind == "close":
                self.sent += 1
                return batch, case
            if planned + case.expect.refusal > budget:
                self.carry = case
                break
            planned += case.expect.refusal
            batch.append(case)
            self.sent += 1
        if planned < budget and self.rng.random() < 0.15:
            batch.append(self.fuzzer.history())  # last: its effect is read back
            self.sent += 1
        return batch, None

    async def send(self, ws, case):
        self.labels[case.label] += 1
        if case.frame == "binary":
            await ws.send(case.payload, text=False)
        elif case.frame == "raw-text":
            await ws.send(case.payload, text=True)
        else:
            await ws.send(case.payload)

    async def exchange(self, ws, batch):
        """Send a batch and a barrier; check every answer. Returns the refusals."""
        self.barriers += 1
        barrier = Case("barrier", "", Expect("pong", extra={BARRIER: self.barriers}))
        for case in batch:
            await self.send(ws, case)
        await ws.send(json.dumps({"type": "ping", BARRIER: self.barriers}))
        immediate = collections.deque(
            c for c in batch if not c.expect.deferred and c.expect.kind != "silent"
        )
        immediate.append(barrier)
        deferred = collections.defaultdict(list)
        for case in batch:
            if case.expect.deferred:
                deferred[case.expect.cid].append(case)
        refusals = 0
        try:
            async with asyncio.timeout(ANSWER_TIMEOUT):
                while immediate or deferred:
                    frame = decode(await ws.recv())
                    refusals += frame["type"] == "error"
                    self.answer(frame, immediate, deferred)
        except (ConnectionClosed, TimeoutError) as exc:
            raise self.broken(exc, batch, immediate, deferred) from None
        return refusals

    def broken(self, exc, batch, immediate, deferred):
        """Which frames were unanswered when the connection broke or stalled."""
        for case in batch:  # ids and cids of these have an unknown fate
            self.fuzzer.burnt.add(case.expect.cid)
            for eid in _ids_in(case):
                self.fuzzer.burnt.add(eid)
        pending = [c for c in batch if c in immediate]
        pending += [c for cases in deferred.values() for c in cases]
        first = batch.index(pending[0]) if pending and pending[0] in batch else 0
        suspects = batch[max(0, first - 3) : first + 1] or batch[-1:]
        what = (
            f"closed {exc.rcvd.code if exc.rcvd else None}"
            if isinstance(exc, ConnectionClosed)
            else "no answer"
        )
        lines = [f"{c.label}: {c.short()}" for c in suspects]
        return Broken(f"{what}; first unanswered frame among:\n  " + "\n  ".join(lines))

    def answer(self, frame, immediate, deferred):
        kind = frame["type"]
        cid = frame.get("cid")
        if kind == "ops":
            for entry in frame["ops"]:
                self.op_entry(entry, deferred)
        elif kind in {"error", "ack"} and cid in deferred:
            self.deferred_answer(frame, deferred)
        elif kind in NOISE:
            pass
        elif not immediate:
            self.problem(f"unexpected frame {str(frame)[:300]}")
        else:
            self.immediate_answer(frame, immediate.popleft())

    def immediate_answer(self, frame, case):
        expect = case.expect
        if expect.kind == "pong":
            ok = frame["type"] == "pong" and same(
                {k: v for k, v in frame.items() if k != "type"}, expect.extra
            )
        else:
            ok = (
                frame["type"] == "error"
                and frame["code"] in _codes(expect)
                and frame.get("cid") == expect.cid
                and ("cid" in frame) == (expect.cid is not None)
                and type(frame.get("message")) is str
            )
        if not ok:
            self.wrong(case, frame)

    def wrong(self, case, frame):
        expect = case.expect
        want = f"{expect.kind} {expect.code or ''} cid={expect.cid!r}"
        got = str(frame)[:300]
        self.problem(f"{case.label}: expected {want}, got {got}\n  sent {case.short()}")

    def deferred_answer(self, frame, deferred):
        cid = frame["cid"]
        cases = deferred[cid]
        case = next(
            (
                c
                for c in cases
                if c.expect.kind == frame["type"] or c.expect.kind == "history"
            ),
            None,
        )
        if case is None:
            self.wrong(cases[0], frame)
            return
        expect = case.expect
        if frame["type"] == "ack":
            ok = frame["seq"] == expect.seq
        elif expect.kind == "history":
            ok = frame["code"] in {"nothing_to_undo", "nothing_to_redo", "board_full"}
        else:
            ok = frame["code"] == expect.code and type(frame.get("message")) is str
        if not ok:
            self.wrong(case, frame)
        self.settle(deferred, cid, case)

    def settle(self, deferred, cid, case):
        deferred[cid].remove(case)
        if not deferred[cid]:
            del deferred[cid]

    def op_entry(self, entry, deferred):
        cid, seq = entry["cid"], entry["seq"]
        if seq in self.seen:
            self.problem(f"seq {seq} received twice")
        self.seen[seq] = entry
        cases = [c for c in deferred.get(cid, ()) if c.expect.kind == "commit"]
        if cases:
            case = cases[0]
            predicted = case.expect.entries[0]
            if not same(entry, predicted):
                self.problem(
                    f"{case.label}: committed {str(entry)[:400]}\n  expected "
                    f"{str(predicted)[:400]}\n  sent {case.short()}"
                )
            self.settle(deferred, cid, case)
            return
        history = [c for c in deferred.get(cid, ()) if c.expect.kind == "history"]
        if history or cid in self.fuzzer.board.committed:
            # An undo/redo: its entries follow one another in one ops frame.
            self.history_entry(entry)
            if history:
                self.settle(deferred, cid, history[0])
            return
        self.problem(f"an op nobody should have committed: {str(entry)[:300]}")
        self.fuzzer.board.apply(entry)

    def history_entry(self, entry):
        board = self.fuzzer.board
        if entry["seq"] != board.seq + 1 or entry["sid"] != self.fuzzer.sid:
            self.problem(f"undo/redo entry out of place: {str(entry)[:300]}")
        if entry["op"] == "add":
            element = entry["element"]
            before = board.tombs.get(element["id"])
            if before is None or not same({**before, "v": entry["seq"]}, element):
                self.problem(f"undo brought back a changed element: {entry}")
        board.apply(entry)

    # -- endings -------------------------------------------------------------------

    async def terminal(self, ws, case):
        """A frame that ends the connection: 1009, or a dropped connection."""
        await self.send(ws, case)
        try:
            async with asyncio.timeout(ANSWER_TIMEOUT):
                while True:
                    frame = json.loads(await ws.recv())
                    if frame["type"] not in NOISE:
                        self.wrong(case, frame)
        except ConnectionClosed as closed:
            code = closed.rcvd.code if closed.rcvd else None
            if code not in case.expect.close:
                self.problem(f"{case.label}: closed with {code}\n  sent {case.short()}")
        except TimeoutError:
            self.problem(f"{case.label}: still open\n  sent {case.short()}")

    async def refusal_101(self, ws):
        """The 101st refusal within a minute: its error, then close 1008."""
        self.deliberate_1008 += 1
        self.sent += 1
        await ws.send('{"type":"welcome","cid":"refusal-101"}')
        frames = []
        try:
            async with asyncio.timeout(ANSWER_TIMEOUT):
                while True:
                    frame = json.loads(await ws.recv())
                    if frame["type"] not in NOISE:
                        frames.append(frame)
        except ConnectionClosed as closed:
            code = closed.rcvd.code if closed.rcvd else None
            codes = [(f["type"], f.get("code"), f.get("cid")) for f in frames]
            if code != 1008 or codes != [("error", "unknown_type", "refusal-101")]:
                self.problem(f"101st refusal: closed {code} after {frames}")
        except TimeoutError:
            self.problem("101st refusal: the connection stayed open")


def _codes(expect):
    """The error codes an expectation accepts (a tuple means any of them)."""
    return expect.code if isinstance(expect.code, tuple) else (expect.code,)


def _ids_in(case):
    """Element ids a case's frame may name (for a crashed batch)."""
    try:
        data = json.loads(case.payload)
    except (ValueError, TypeError, RecursionError):
        return []
    if not isinstance(data, dict):
        return []
    element = data.get("element")
    ids = [data.get("id")] + (data.get("ids") if type(data.get("ids")) is list else [])
    ids.append(element.get("id") if isinstance(element, dict) else None)
    return [i for i in ids if type(i) is str]


def final_checks(fuzz, bystander, welcome, state):
    """What is stored: valid elements, the model's board, only the valid ops."""
    problems = []
    limits = p.Limits(**welcome["limits"])
    elements = [e for frame in state for e in frame["elements"]]
    for element in elements:
        try:
            normal = p.validate_element(element, limits)
        except p.ProtocolError as exc:
            problems.append(f"stored element is invalid ({exc}): {element}")
            continue
        stripped = {k: v for k, v in element.items() if k not in {"v", "by"}}
        if not same(normal, stripped):
            problems.append(f"stored element is not normalized: {element}")
    board = fuzz.fuzzer.board
    if not same(elements, board.elements()):
        problems.append("the stored board differs from the model")
    seq = welcome["seq"]
    if sorted(bystander.entries) != list(range(1, seq + 1)):
        problems.append(f"bystander saw seqs {len(bystander.entries)} of 1..{seq}")
    if sorted(fuzz.seen) != list(range(1, seq + 1)):
        problems.append(f"the fuzzer saw {len(fuzz.seen)} seqs of 1..{seq}")
    for s, entry in bystander.entries.items():
        if entry["cid"] not in fuzz.fuzzer.valid_cids:
            problems.append(f"committed an op that was not valid: {entry}")
        if s in fuzz.seen and not same(entry, fuzz.seen[s]):
            problems.append(
                f"seq {s} differs between the two connections: {str(entry)[:300]}"
                f"\n  vs {str(fuzz.seen[s])[:300]}"
            )
    return problems


def daphne_errors(server):
    return [
        line
        for line in server.logs().splitlines()
        if "Traceback" in line or " ERROR " in line or "CRITICAL" in line
    ]


@pytest.mark.parametrize("config", sorted(CONFIGS))
async def test_fuzzed_frames_are_answered_as_the_protocol_says(
    start_server, live_db, config
):
    env, frames = CONFIGS[config]
    frames = int(os.environ.get("FUZZ_FRAMES", frames))
    seed = f"{SEED}-{config}"
    print(f"fuzz seed {seed!r}, {frames} frames (FUZZ_SEED, FUZZ_FRAMES)")
    server = start_server(**env)
    slug = live_db.create_board()
    async with server.open(slug) as watcher:
        await read_state(watcher)
        bystander = Bystander(watcher)
        watching = asyncio.create_task(bystander.run())
        fuzz = Fuzz(server, slug, random.Random(seed), frames)
        await fuzz.run(bystander)
        async with server.open(slug) as ws:
            welcome, state = await read_state(ws)
        await bystander.reach(welcome["seq"])
        watching.cancel()
    problems = fuzz.problems + bystander.problems
    problems += final_checks(fuzz, bystander, welcome, state)
    problems += [f"daphne logged: {line}" for line in daphne_errors(server)[:10]]
    print(
        f"sent {fuzz.sent} frames in {fuzz.barriers} batches, seq {welcome['seq']}, "
        f"{len(state[0]['elements'])}+ elements, {fuzz.deliberate_1008} x 1008; "
        f"bystander got {dict(bystander.counts)}"
    )
    assert not problems, (
        f"seed {seed!r}: {len(problems)} problems, the first {MAX_REPORTED}:\n"
        + "\n".join(problems[:MAX_REPORTED])
    )


# -- what the fuzzer found, one test each ---------------------------------------------


async def test_since_of_5000_digits_gets_a_snapshot_not_a_1011(start_server, live_db):
    # whiteboard/consumers.py since_from() calls int() on any ASCII digit string;
    # beyond 4,300 digits Python raises ValueError inside connect: traceback and
    # 1011. A decimal that large is ahead of any seq: the full snapshot is due.
    server = start_server()
    slug = live_db.create_board()
    async with server.open(slug, "?since=" + "9" * 5000) as ws:
        welcome, state = await read_state(ws)
    assert state == [{"type": "snapshot", "seq": 0, "elements": [], "more": False}]
    assert not daphne_errors(server)
