"""Fill a board of our server with the late-join scenario's elements.

Run by the bench in the site's environment (its own settings and database): it
migrates, creates public boards, and adds elements. Each element goes through
the same path as an `add` from a socket (decoded and validated by `protocol`,
committed by `services.ops_commit` in batches of 500), so the stored rows are
exactly what a board drawn by hand would hold.

    DJANGO_SETTINGS_MODULE=config.settings python bench/populate.py \\
        --boards SLUG... [--elements SLUG:N]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

BATCH = 500


def boards(slugs: list[str]) -> None:
    """Create public boards (guests are editors), as `manage.py createboard` does."""
    from whiteboard import services

    for slug in slugs:
        services.board_create(slug=slug, title=slug)


def elements(slug: str, count: int) -> None:
    from elements import board_elements

    from whiteboard import protocol, selectors, services
    from whiteboard.changes import OpRequest
    from whiteboard.identity import Author

    limits = services.current_limits()
    board = selectors.board_by_slug(slug)
    author = Author(sid=None, by="bench", actor="bench-populate", role="owner")
    elements = board_elements(count)
    for start in range(0, count, BATCH):
        requests = []
        for n, element in enumerate(elements[start : start + BATCH], start):
            text = json.dumps(
                {"type": "add", "cid": f"seed-{n:08d}", "element": element}
            )
            envelope = protocol.parse_envelope(text)
            op = protocol.validate(envelope, limits)
            requests.append(
                OpRequest(cid=envelope.cid, kind="add", author=author, op=op)
            )
        result = services.ops_commit(
            board_id=board.pk, requests=requests, limits=limits
        )
        refused = [o.error for o in result.outcomes if o.error is not None]
        if refused:
            raise SystemExit(f"populate: refused {refused[0]}")


def setup(argv: list[str]) -> None:
    """Migrate, create the boards, fill some: one process instead of three."""
    from django.core.management import call_command

    call_command("migrate", interactive=False, verbosity=0)
    parser = argparse.ArgumentParser(prog="populate.py")
    parser.add_argument("--boards", nargs="*", default=[])
    parser.add_argument("--elements", nargs="*", default=[], help="SLUG:N")
    args = parser.parse_args(argv)
    boards(args.boards)
    for spec in args.elements:
        slug, count = spec.rsplit(":", 1)
        elements(slug, int(count))


if __name__ == "__main__":
    import django

    django.setup()
    setup(sys.argv[1:])
