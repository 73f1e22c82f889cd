"""Sum py-spy raw stacks into the frames where the server's time goes.

    .venv/bin/python bench/run.py --scenarios busy --no-baseline --profile prof/
    .venv/bin/python bench/profile.py prof/busy-ours.*.txt [--top 25]

Prints two Markdown tables: by own time (the frame at the top of the stack)
and by total time (the frame anywhere in the stack), as shares of all samples.
Idle samples (the event loop waiting in select/epoll) are counted apart.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

IDLE = re.compile(r"\((selectors|threading)\.py\)|select \(|epoll|_worker \(concurrent")


def frames(line: str) -> tuple[list[str], int]:
    stack, _, count = line.rpartition(" ")
    return [short(f) for f in stack.split(";") if f], int(count)


def short(frame: str) -> str:
    """`func (path/to/module.py:123)` -> `func (module.py)`: lines merged."""
    name, _, where = frame.partition(" (")
    where = where.rstrip(")").rsplit(":", 1)[0]
    return f"{name} ({'/'.join(where.split('/')[-2:])})"


# Where a sample belongs: the first of these found anywhere in its stack.
PARTS = [
    (
        "commit: ops_commit in the database thread (ORM, SQLite, JSON of rows)",
        "ops_commit",
    ),
    (
        "receive: parse + validate + queue an op (BoardConsumer.receive)",
        "BoardConsumer.receive",
    ),
    (
        "fan-out: hand a batch to every local connection (Room.forward)",
        "Room.forward",
    ),
    ("daphne/autobahn/twisted: read and unframe incoming frames", "doRead"),
    ("twisted: write outgoing frames to sockets", "doWrite"),
    (
        "channels: the consumer's receive loop (await_many_dispatch)",
        "await_many_dispatch",
    ),
    ("channel layer: group_send and the process's receive loop", "Process.listen"),
]


def samples(paths: list[Path]):
    """(stack, count) of every sample line in py-spy's collapsed output files."""
    for path in paths:
        for line in path.read_text().splitlines():
            if line.strip():
                yield frames(line)


def parts(paths: list[Path]) -> tuple[Counter, int]:
    """Busy samples by the part of the server they were in (PARTS, else other)."""
    found, busy = Counter(), 0
    for stack, count in samples(paths):
        if not stack or IDLE.search(stack[-1]):
            continue
        busy += count
        names = [frame.split(" (")[0] for frame in stack]
        label = next(
            (label for label, key in PARTS if any(key in n for n in names)),
            "other",
        )
        found[label] += count
    return found, busy


def summarize(paths: list[Path]) -> tuple[Counter, Counter, int, int]:
    own, total, busy, idle = Counter(), Counter(), 0, 0
    for stack, count in samples(paths):
        if not stack or IDLE.search(stack[-1]):
            idle += count
            continue
        busy += count
        own[stack[-1]] += count
        for frame in set(stack):
            total[frame] += count
    return own, total, busy, idle


def table(counter: Counter, busy: int, top: int, title: str) -> str:
    lines = [f"| {title} | share of busy samples |", "|---|---:|"]
    for frame, count in counter.most_common(top):
        lines.append(f"| `{frame}` | {100 * count / busy:.1f} % |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    own, total, busy, idle = summarize(args.files)
    print(f"{busy} busy samples, {idle} idle (waiting for the network)\n")
    found, _ = parts(args.files)
    print(table(found, busy, len(PARTS) + 1, "part of the server"))
    print()
    print(table(own, busy, args.top, "own time (top of stack)"))
    print()
    print(table(total, busy, args.top, "total time (anywhere in the stack)"))


if __name__ == "__main__":
    main()
