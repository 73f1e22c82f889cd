import datetime

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from whiteboard import timeline
from whiteboard.models import Board


class Command(BaseCommand):
    help = (
        "Drop the ops older than N days (default WHITEBOARD_HISTORY_DAYS), "
        "keeping every board's current state and a checkpoint where its kept "
        'history starts (docs/operations.md, "History").'
    )

    def add_arguments(self, parser):
        parser.add_argument("--board", metavar="SLUG", help="one board only")
        parser.add_argument(
            "--days", type=int, help="keep this many days of history (at least 0)"
        )

    def handle(self, *args, board, days, **options):
        if days is None:
            days = settings.WHITEBOARD_HISTORY_DAYS or None
        if days is None or days < 0:
            raise CommandError(
                "Say how many days to keep: --days N (0 or more), or set "
                "WHITEBOARD_HISTORY_DAYS."
            )
        before = timezone.now() - datetime.timedelta(days=days)
        boards = None
        if board:
            boards = list(Board.objects.filter(slug=board))
            if not boards:
                raise CommandError(f"There is no board {board!r}.")
        dropped = timeline.compact_all(before, boards)
        self.stdout.write(
            f"Dropped {dropped} ops older than {before:%Y-%m-%d %H:%M} UTC."
        )
