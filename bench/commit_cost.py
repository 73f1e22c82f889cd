"""CPU time of `services.ops_commit` per op, two ways side by side.

Commits batches of `add` ops (the bench's 20-point strokes, decoded and validated
as a socket's would be) to a fresh SQLite site, alternating between the code as
it is (rows written by whiteboard/rows.py's one multi-row INSERT) and Django's
`bulk_create`, and prints the median process CPU time per op of each. Process
CPU time, not wall time: on a shared machine this measures the code, not the
neighbours.

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
    from worker import POINTS

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


def cpu_per_op_us(board, limits, way: str, tag: str, args) -> float:
    from whiteboard import changes, rows, services

    changes.insert_rows = (
        rows.insert_rows
        if way == "insert_rows"
        else lambda m, r: m.objects.bulk_create(r)
    )
    batches = [requests(f"{tag}-{k}", args.batch, limits) for k in range(args.batches)]
    spent = 0.0
    for batch in batches:
        began = time.process_time()
        services.ops_commit(board_id=board.pk, requests=batch, limits=limits)
        spent += time.process_time() - began
    return spent / (args.batch * args.batches) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--batches", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    setup_site()
    from whiteboard import services

    board = services.board_create(slug="commit-cost", title="commit cost")
    limits = services.current_limits()
    results: dict[str, list[float]] = {"bulk_create": [], "insert_rows": []}
    for r in range(args.rounds):
        for way in results:
            results[way].append(cpu_per_op_us(board, limits, way, f"{way}{r}", args))
    before, after = (statistics.median(results[w]) for w in results)
    print(f"batches of {args.batch} adds, median of {args.rounds} rounds:")
    print("| rows written with | ops_commit CPU per op, us |\n|---|---:|")
    print(f"| bulk_create | {before:.0f} |\n| insert_rows | {after:.0f} |")
    print(f"insert_rows / bulk_create: {after / before:.2f}")


if __name__ == "__main__":
    main()
