"""CPU time of the commit path per op: one board's batches, then many boards'.

Commits batches of `add` ops (the bench's 20-point strokes, decoded and validated
as a socket's would be) to a fresh SQLite site and prints the median process CPU
time per op of `services.ops_commit`. Then one op on each of 100 boards,
committed three ways side by side: one transaction per board; one transaction
with a savepoint and `ops_commit` per board (the group commit before issue 11);
and `services.ops_commit_boards`, set-based (whiteboard/commits.py). Process CPU
time, not wall time: on a shared machine this measures the code, not the
neighbours (the wall time, with SQLite's sync at each commit, is printed too).

    .venv/bin/python bench/commit_cost.py [--batch 50] [--batches 60] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def setup_site() -> None:
    tmp = tempfile.mkdtemp(prefix="wb-commit-")
    os.environ.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        DJANGO_DEBUG="0",
        DJANGO_SECRET_KEY="bench-not-secret",
        DATABASE_URL=f"sqlite:///{tmp}/commit.sqlite3",
        WHITEBOARD_MAX_ELEMENTS="10000000",
    )
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", interactive=False, verbosity=0)


def requests(tag: str, count: int, limits) -> list:
    from clientstate import POINTS

    from whiteboard import protocol
    from whiteboard.changes import OpRequest
    from whiteboard.identity import Author

    authors = [Author(sid=f"s{i}", by=f"User {i}", actor=f"a{i}") for i in range(20)]
    out = []
    for i in range(count):
        element = {"id": f"e{tag}-{i}", "kind": "stroke", "x": i, "y": 3}
        element |= {"points": POINTS, "color": "#1e88e5", "width": 3}
        text = json.dumps({"type": "add", "cid": f"c{tag}-{i:06d}", "element": element})
        envelope = protocol.parse_envelope(text)
        op = protocol.validate(envelope, limits)
        out.append(OpRequest(envelope.cid, "add", authors[i % 20], op))
    return out


def cpu_per_op_us(board, limits, tag: str, args) -> float:
    from whiteboard import services

    batches = [requests(f"{tag}-{k}", args.batch, limits) for k in range(args.batches)]
    spent = 0.0
    for batch in batches:
        began = time.process_time()
        services.ops_commit(board_id=board.pk, requests=batch, limits=limits)
        spent += time.process_time() - began
    return spent / (args.batch * args.batches) * 1e6


def savepoint_per_board(batches) -> None:
    """The group commit as it was before issue 11: a savepoint per board."""
    from django.db import transaction

    from whiteboard import commits

    with transaction.atomic():
        for batch in batches:
            commits.commit_or_error(*batch)


def group_cost(limits, args) -> dict:
    """One op on each of `args.boards` boards: one transaction per board, or one
    transaction for all (services.ops_commit_boards). CPU and wall time per op;
    the wall time includes SQLite's sync to disk at each commit."""
    from whiteboard import services

    boards = [
        services.board_create(slug=f"group-{i}", title="group").pk
        for i in range(args.boards)
    ]
    ways = ("one transaction per board", "savepoint per board", "set-based")
    spent = {way: [0.0, 0.0] for way in ways}
    for r in range(args.rounds * 4):
        for way, totals in spent.items():
            batches = [
                (pk, requests(f"g{way[:3]}{r}-{pk}", 1, limits), limits)
                for pk in boards
            ]
            cpu0, wall0 = time.process_time(), time.perf_counter()
            if way == "set-based":
                services.ops_commit_boards(batches=batches)
            elif way == "savepoint per board":
                savepoint_per_board(batches)
            else:
                for pk, reqs, lim in batches:
                    services.ops_commit(board_id=pk, requests=reqs, limits=lim)
            totals[0] += time.process_time() - cpu0
            totals[1] += time.perf_counter() - wall0
    ops = args.rounds * 4 * args.boards
    return {
        way: (cpu / ops * 1e6, wall / ops * 1e6) for way, (cpu, wall) in spent.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--batches", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--boards", type=int, default=100)
    args = parser.parse_args()
    setup_site()
    from whiteboard import services

    board = services.board_create(slug="commit-cost", title="commit cost")
    limits = services.current_limits()
    costs = [cpu_per_op_us(board, limits, f"one{r}", args) for r in range(args.rounds)]
    print(f"batches of {args.batch} adds on one board, median of {args.rounds} rounds:")
    print(f"ops_commit CPU per op: {statistics.median(costs):.0f} us")
    print(f"\none op on each of {args.boards} boards, {args.rounds * 4} rounds:")
    print("| committed as | CPU per op, us | wall time per op, us |\n|---|---:|---:|")
    for way, (cpu, wall) in group_cost(limits, args).items():
        print(f"| {way} | {cpu:.0f} | {wall:.0f} |")


if __name__ == "__main__":
    main()
